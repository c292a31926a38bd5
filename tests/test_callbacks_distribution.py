"""The callback under distribution: two TensorFlow workers, and JAX over two devices.

Each run is a fresh process (or two), bounded in time: a two-worker
`MultiWorkerMirroredStrategy` talks over two localhost ports, and JAX sees
two CPU devices only when `XLA_FLAGS` says so before it starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import ROOT, run_python
from tensorboard_events import read_events

pytestmark = pytest.mark.slow
#: The tests sharing one two-worker run, or one JAX run, form a pytest-xdist
#: group each, so that one worker makes it (`make test` distributes by group).
MULTI_WORKER = pytest.mark.xdist_group("multi-worker")
JAX_DEVICES_GROUP = pytest.mark.xdist_group("jax-devices")

#: Keras 3.15's `fit` cannot run under MultiWorkerMirroredStrategy
#: (keras-team/keras#20585), so each worker trains in a custom loop that
#: drives the callbacks through `keras.callbacks.CallbackList`, outside the
#: strategy's scope as `fit` calls them. Every worker has one InitDiagnostics
#: on the shared log_dir and one whose log_dir the chief cannot write.
WORKER = """
import json, os, sys
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{port}" for port in PORTS]},
                                      "task": {"type": "worker", "index": INDEX}})
import tensorflow as tf
import keras, numpy as np
from kinit.callbacks import InitDiagnostics

strategy = tf.distribute.MultiWorkerMirroredStrategy()
keras.utils.set_random_seed(5)
x, y = (np.asarray(a, "float32") for a in DATA)
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, "relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.05), "mse")
batches = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))


@tf.function
def train(batch):
    def step(inputs, targets):
        with tf.GradientTape() as tape:
            errors = tf.reduce_mean(tf.square(model(inputs, training=True) - targets), axis=-1)
            loss = tf.nn.compute_average_loss(errors, global_batch_size=16)
        model.optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    strategy.run(step, args=batch)


class Weights(keras.callbacks.Callback):
    steps = {}

    def on_train_begin(self, logs=None):
        self.steps[0] = [w.tolist() for w in self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.steps[epoch + 1] = [w.tolist() for w in self.model.get_weights()]


blocked = os.path.join(os.path.dirname(LOG_DIR), f"blocked_{INDEX}")
if INDEX == 0:
    open(blocked, "w").close()  # a file: the chief cannot make its log_dir
callbacks = keras.callbacks.CallbackList(
    [Weights(), InitDiagnostics(LOG_DIR, (x[:16], y[:16])), InitDiagnostics(os.path.join(blocked, "logs"), (x[:16], y[:16]))],
    model=model)
callbacks.on_train_begin()
for epoch in range(EPOCHS):
    callbacks.on_epoch_begin(epoch)
    for batch in batches:
        train(batch)
    callbacks.on_epoch_end(epoch)
callbacks.on_train_end()
print(json.dumps({"pid": os.getpid(), "chief": strategy.extended.should_save_summary,
                  "replicas": strategy.num_replicas_in_sync, "weights": Weights.steps,
                  "blocked": os.path.exists(os.path.join(blocked, "logs"))}))
"""

EPOCHS = 2


def free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_worker(index: int, ports: list, log_dir, data) -> subprocess.Popen:
    code = textwrap.dedent(WORKER).replace("PORTS", repr(ports)).replace("INDEX", str(index)) \
        .replace("LOG_DIR", repr(str(log_dir))).replace("EPOCHS", str(EPOCHS)).replace("DATA", repr(data))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.fixture(scope="session")
def two_workers(tmp_path_factory):
    """Both workers' reports and the shared log_dir; a worker that does not finish in time fails the run."""
    log_dir = tmp_path_factory.mktemp("multi_worker") / "logs"
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype("float32")
    data = (x.tolist(), (x[:, :1] * 2.0 - x[:, 1:2]).tolist())
    ports = free_ports(2)
    workers = [start_worker(index, ports, log_dir, data) for index in (0, 1)]
    reports = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err[-3000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    return reports, log_dir, data


@MULTI_WORKER
def test_two_workers_train_in_sync_and_the_chief_is_worker_0(two_workers):
    (chief, worker), _, _ = two_workers
    assert (chief["chief"], worker["chief"]) == (True, False)
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["weights"] == worker["weights"]  # mirrored: one model
    assert chief["weights"]["0"] != chief["weights"][str(EPOCHS)]  # and it trained


@MULTI_WORKER
def test_only_the_chief_writes_event_files(two_workers):
    (chief, worker), log_dir, _ = two_workers
    written = [path for path in log_dir.rglob("events.out.tfevents.*")]
    assert written and all(path.name.split(".")[-3] == str(chief["pid"]) for path in written), written
    assert not any(str(worker["pid"]) in path.name for path in log_dir.rglob("*"))


@MULTI_WORKER
def test_a_chief_that_cannot_write_blocks_no_one(two_workers):
    # The chief's second callback could not make its log_dir: both workers still finished every epoch.
    (chief, worker), _, _ = two_workers
    assert not chief["blocked"] and sorted(worker["weights"]) == [str(s) for s in range(EPOCHS + 1)]


@MULTI_WORKER
def test_the_chief_logs_what_a_single_worker_logs_on_the_same_weights(two_workers, tmp_path):
    from kinit.callbacks import InitDiagnostics

    (chief, _), log_dir, (x, y) = two_workers
    x, y = np.asarray(x, "float32"), np.asarray(y, "float32")
    events = read_events(log_dir)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, "relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    single = InitDiagnostics(tmp_path, (x[:16], y[:16]))
    single.set_model(model)
    for step, weights in sorted(chief["weights"].items(), key=lambda item: int(item[0])):
        model.set_weights([np.asarray(w, "float32") for w in weights])
        single.on_train_begin() if step == "0" else single.log(int(step))  # step 0 at train begin
    single.on_train_end()
    expected = read_events(tmp_path)
    assert events.tags("histograms") == expected.tags("histograms")
    assert events.tags("scalars") == expected.tags("scalars")
    assert any(tag.startswith("gradients/") for tag in events.tags("histograms"))
    for tag in expected.tags("histograms") | expected.tags("scalars"):
        assert sorted(events.values[tag]) == sorted(expected.values[tag]), tag
        for step, value in expected.values[tag].items():
            np.testing.assert_allclose(events.values[tag][step], value, rtol=1e-6, atol=1e-7, err_msg=f"{tag} {step}")


#: JAX over two host devices: the callback with no distribution, DataParallel
#: and ModelParallel (a LayoutMap sharding every Dense kernel across the two;
#: Keras 3.15 matches its keys against the whole variable path), and every
#: kinit scheme initializing variables under them, also on the `jax.jit` path
#: Keras takes for variables over 250 MiB (forced here for small ones).
JAX_DEVICES = """
import json, sys, tempfile
sys.path.insert(0, "tests")
import jax, keras, numpy as np
import keras.src.backend.jax.core as jax_core
import catalog
from kinit.callbacks import InitDiagnostics, array_statistics
from tensorboard_events import read_events

devices = jax.devices()
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 8)).astype("float32")
y = rng.normal(size=(32, 1)).astype("float32")
mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
layout_map = keras.distribution.LayoutMap(mesh)
layout_map["(.*/)?dense[^/]*/kernel"] = (None, "model")
layout_map["(.*/)?conv1d[^/]*/kernel"] = (None, None, "model")
DISTRIBUTIONS = {
    "none": lambda: None,
    "DataParallel": lambda: keras.distribution.DataParallel(devices=devices),
    "ModelParallel": lambda: keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"),
}


def diagnostics(name):
    keras.distribution.set_distribution(DISTRIBUTIONS[name]())
    try:
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, "relu", name="dense"),
                                  keras.layers.Dense(1, name="head")])
        model.compile(keras.optimizers.SGD(0.01), "mse")
        kernel = model.get_layer("dense").kernel
        gathered = {}

        class Gather(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                gathered[0] = np.asarray(kernel.value)

            def on_epoch_end(self, epoch, logs=None):
                gathered[epoch + 1] = np.asarray(kernel.value)

        log_dir = tempfile.mkdtemp()
        model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                  callbacks=[Gather(), InitDiagnostics(log_dir, (x[:16], y[:16]), buckets=7)])
        events = read_events(log_dir)
        with jax.enable_x64(True):
            hlo = jax.jit(array_statistics._summaries(((False, None),))).lower([kernel.value]).compile().as_text()
        return {
            "devices": [sorted(d.id for d in piece.devices()) for piece in array_statistics._pieces(kernel.value)],
            "sharding": str(kernel.value.sharding),
            "histograms": {tag: {str(step): value.tolist() for step, value in steps.items()}
                           for tag, steps in events.values.items() if events.plugin[tag] == "histograms"},
            "numpy": {str(step): np.histogram(k.astype(np.float64), bins=7, range=(k.min(), k.max()))[0].tolist()
                      for step, k in gathered.items()},
            "statistics gather": "all-gather" in hlo,
        }
    finally:
        keras.distribution.set_distribution(None)


def kernels(name, jit=False):
    keras.distribution.set_distribution(DISTRIBUTIONS[name]())
    original = jax_core.should_shard_at_init
    if jit:
        jax_core.should_shard_at_init = lambda layout, shape: True
    try:
        found = {}
        for cls in catalog.public_scheme_classes():
            layer = catalog.layer_for(catalog.example(cls), f"dense_{cls.__name__.split('.')[-1].lower()}")
            model = keras.Sequential([keras.Input((5,)), layer])
            kernel = next(w for w in model.weights if w.path.endswith("kernel"))
            found[cls.__name__] = [np.asarray(kernel.value).tolist(), len(kernel.value.sharding.device_set),
                                   kernel.value.sharding.is_fully_replicated]
        return found
    finally:
        jax_core.should_shard_at_init = original
        keras.distribution.set_distribution(None)


print(json.dumps({
    "diagnostics": {name: diagnostics(name) for name in DISTRIBUTIONS},
    "initializers": {"none": kernels("none"), "DataParallel": kernels("DataParallel"),
                     "ModelParallel": kernels("ModelParallel"), "ModelParallel, jax.jit": kernels("ModelParallel", True)},
}))
"""


@pytest.fixture(scope="session")
def jax_devices():
    env_before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    try:
        result = run_python(JAX_DEVICES, backend="jax", cwd=ROOT, timeout=400)
    finally:
        if env_before is None:
            os.environ.pop("XLA_FLAGS")
        else:
            os.environ["XLA_FLAGS"] = env_before
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@JAX_DEVICES_GROUP
def test_jax_distributions_log_the_same_tags_and_steps(jax_devices):
    runs = jax_devices["diagnostics"]
    reference = runs["none"]["histograms"]
    assert any(tag.startswith("gradients/") for tag in reference)
    for name in ("DataParallel", "ModelParallel"):
        assert {tag: sorted(steps) for tag, steps in runs[name]["histograms"].items()} == \
            {tag: sorted(steps) for tag, steps in reference.items()}, name
        for tag, steps in reference.items():  # the same initialization, probe and weights at step 0
            ours, theirs = np.array(runs[name]["histograms"][tag]["0"]), np.array(steps["0"])
            np.testing.assert_array_equal(ours[:, 2], theirs[:, 2], err_msg=f"{name} {tag}")
            np.testing.assert_allclose(ours[:, :2], theirs[:, :2], rtol=1e-6, atol=1e-7, err_msg=f"{name} {tag}")


@JAX_DEVICES_GROUP
def test_a_sharded_kernel_is_binned_shard_by_shard_as_numpy_bins_the_gathered_kernel(jax_devices):
    sharded = jax_devices["diagnostics"]["ModelParallel"]
    assert "'model'" in sharded["sharding"] and sharded["devices"] == [[0], [1]]  # one piece per device
    assert not sharded["statistics gather"]  # its statistics are reduced where its shards live
    for name, run in jax_devices["diagnostics"].items():
        histograms = run["histograms"]["weights/dense/kernel"]
        assert sorted(histograms) == ["0", "1", "2"]
        for step, counts in run["numpy"].items():
            np.testing.assert_array_equal(np.array(histograms[step])[:, 2], counts, err_msg=f"{name} {step}")


@JAX_DEVICES_GROUP
def test_every_kinit_scheme_initializes_the_same_values_under_jax_distributions(jax_devices):
    runs = jax_devices["initializers"]
    reference = runs["none"]
    assert runs["ModelParallel"].keys() == reference.keys() and len(reference) >= 20
    assert all(not replicated and devices == 2 for _, devices, replicated in runs["ModelParallel"].values())
    for name in ("DataParallel", "ModelParallel"):
        for scheme, (want, _, _) in reference.items():
            np.testing.assert_array_equal(runs[name][scheme][0], want, err_msg=f"{name}: {scheme}")
    # Under jax.jit XLA compiles a draw together with the arithmetic that scales it (as it does for
    # Keras's own RandomNormal), which can move a value by a few float32 roundings of the largest one.
    for scheme, (want, _, _) in reference.items():
        got, want = np.array(runs["ModelParallel, jax.jit"][scheme][0]), np.array(want)
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * np.finfo(np.float32).eps * np.abs(want).max(),
                                   err_msg=scheme)
