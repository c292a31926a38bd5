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


@pytest.fixture(scope="module")
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


def test_two_workers_train_in_sync_and_the_chief_is_worker_0(two_workers):
    (chief, worker), _, _ = two_workers
    assert (chief["chief"], worker["chief"]) == (True, False)
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["weights"] == worker["weights"]  # mirrored: one model
    assert chief["weights"]["0"] != chief["weights"][str(EPOCHS)]  # and it trained


def test_only_the_chief_writes_event_files(two_workers):
    (chief, worker), log_dir, _ = two_workers
    written = [path for path in log_dir.rglob("events.out.tfevents.*")]
    assert written and all(path.name.split(".")[-3] == str(chief["pid"]) for path in written), written
    assert not any(str(worker["pid"]) in path.name for path in log_dir.rglob("*"))


def test_a_chief_that_cannot_write_blocks_no_one(two_workers):
    # The chief's second callback could not make its log_dir: both workers still finished every epoch.
    (chief, worker), _, _ = two_workers
    assert not chief["blocked"] and sorted(worker["weights"]) == [str(s) for s in range(EPOCHS + 1)]


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
