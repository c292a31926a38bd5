"""MirroredStrategy and the three Keras backends, each in a fresh process
(logical devices and the Keras backend must be chosen before start-up)."""

import json

import numpy as np
import pytest

# Every test here shares the three backend runs below: one pytest-xdist group,
# so that one worker makes them (`make test` distributes by group).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("callback-backends")]

MIRRORED = """
import json, tempfile
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from kinit.callbacks import InitDiagnostics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x[:, :1] * 2.0

def run(strategy):
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, "relu", name="hidden"),
                                  keras.layers.Dense(1, name="out")])
        model.compile("sgd", "mse")
    log_dir = tempfile.mkdtemp()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                        callbacks=[InitDiagnostics(log_dir, (x[:16], y[:16]))])
    events = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    events.Reload()
    return {"replicas": strategy.num_replicas_in_sync, "epochs": len(history.history["loss"]),
            "steps": {tag: sorted(e.step for e in events.Tensors(tag)) for tag in events.Tags()["tensors"]}}

print(json.dumps({"mirrored": run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
                  "default": run(tf.distribute.get_strategy())}))
"""

def run_json(fresh_python, code, **kwargs):
    result = fresh_python(code, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_on_two_cpus_writes_the_same_tags(fresh_python):
    runs = run_json(fresh_python, MIRRORED)
    mirrored, default = runs["mirrored"], runs["default"]
    assert (mirrored["replicas"], mirrored["epochs"]) == (2, 2)
    assert mirrored["steps"] == default["steps"]
    histograms = [t for t in mirrored["steps"] if t.split("/")[0] in ("weights", "activations", "gradients")]
    assert len(histograms) == 10 and all(mirrored["steps"][t] == [0, 1, 2] for t in histograms)


#: One run per backend: the same model, weights and probe through `diagnose`
#: and the callback's step-0 log; on JAX and PyTorch also the statistics and
#: histograms of `test_callbacks_tensor_statistics.CASES` against NumPy and
#: TensorFlow's bins, and how often what is compiled is compiled.
BACKEND_RUN = """
import json, sys, tempfile
sys.path.insert(0, "tests")
import keras, numpy as np
from kinit.callbacks import InitDiagnostics, diagnose
from tensorboard_events import read_events

backend = keras.backend.backend()
rng = np.random.default_rng(7)
x = rng.normal(size=(24, 6, 6, 2)).astype("float32")
y = rng.integers(0, 3, size=24)


class CountingDense(keras.layers.Dense):
    calls = 0

    def call(self, inputs):
        CountingDense.calls += 1
        return super().call(inputs)


def build():
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(5, 3, activation="relu", name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dropout(0.5, name="drop"),
        CountingDense(8, activation="tanh", name="hidden"),
        keras.layers.Dense(3, activation="softmax", name="head"),
    ])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


model = build()
weights = [np.random.default_rng(i).normal(0.1, 0.6, size=w.shape).astype("float32")
           for i, w in enumerate(model.get_weights())]
weights[1][:3] -= 10.0  # conv bias: 3 of its 5 units dead
weights[5] = np.abs(weights[5]) + 0.5  # moving variance
model.set_weights(weights)
report = diagnose(model, x, y)
log_dir = tempfile.mkdtemp()
callback = InitDiagnostics(log_dir, (x, y), buckets=9)
callback.set_model(model)
callback.on_train_begin()
calls = [CountingDense.calls]
for step in (1, 2, 3):  # later logs of the same model
    callback.log(step)
    calls.append(CountingDense.calls)
callback.on_train_end()
events = read_events(log_dir)
result = {
    "rows": [r.as_dict() for r in report.rows], "findings": report.findings, "notes": report.notes,
    "histograms": {t: events.values[t][0].tolist() for t in events.tags("histograms")},
    "scalars": {t: float(events.values[t][0]) for t in events.tags("scalars") if 0 in events.values[t]},
    "text": {t: events.values[t][0].item().decode() for t in events.tags("text")},
    "model unchanged": all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights())),
    "optimizer iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
    "layer calls after each log": calls,
}
if backend == "torch":
    result["grads accumulated"] = [v.value.grad is not None for v in model.trainable_variables]
from kinit.callbacks import writer
result["written by tensorflow"] = writer.SummaryWriter(tempfile.mkdtemp())._events is None


class UnusedBranch(keras.Model):
    def __init__(self):
        super().__init__()
        self.first, self.unused, self.last = (keras.layers.Dense(3, name=n) for n in ("first", "unused", "last"))

    def call(self, inputs):
        self.unused(inputs)
        return self.last(self.first(inputs))


branchy = UnusedBranch()
branchy(x[:4, 0, 0])
branchy.compile("sgd", "mse")
result["gradients of a model with a branch the loss never reads"] = sorted(
    r.path for r in diagnose(branchy, x[:8, 0, 0], np.ones((8, 3), "float32")).rows if r.kind == "gradient")

if backend != "tensorflow":
    from test_callbacks_tensor_statistics import CASES, numpy_reference
    import tensorflow as tf
    from kinit.callbacks import array_statistics, writer

    def tensor(values):
        return array_statistics._backend_array(values)

    got = array_statistics.summarize_arrays([(tensor(v), p, a) for v, p, a in CASES.values()])
    result["statistics"] = {name: [summary, numpy_reference(*case)] for (name, case), summary in zip(CASES.items(), got)}
    clean = CASES["dense kernel"][0]
    broken = clean.copy()
    broken[1, 2], broken[3, 0] = np.nan, -np.inf
    tensors = [v for v, _, _ in CASES.values()] + [broken, np.full((3, 4), 0.5, "float32"),
                                                   np.array([np.nan, np.inf], "float32")]
    ranges = [(float(np.min(v)), float(np.max(v))) for v, _, _ in CASES.values()] + [None, (0.5, 0.5), None]
    ours = array_statistics.histogram_arrays([tensor(v) for v in tensors], 13, ranges)
    theirs = [writer._histogram(tf.convert_to_tensor(v), tf.constant(13), tf.constant(r or (np.nan, np.nan), tf.float64)).numpy()
              for v, r in zip(tensors, ranges)]
    result["histograms equal tensorflow's"] = [bool(np.array_equal(a, b)) for a, b in zip(ours, theirs)]
    subnormal = np.array([1e-40, -2e-40, 3e-40, 0.0], "float32")
    result["subnormals left to numpy"] = array_statistics.summarize_arrays([(tensor(subnormal), False, None)]) == [None]

if backend == "jax":
    from kinit.callbacks import array_statistics
    result["compiled statistics per model"] = sorted(f._cache_size() for f in array_statistics._CALLS.values())

if backend == "torch":
    import torch
    from kinit.callbacks import array_statistics

    tensors = [torch.from_numpy(x), torch.from_numpy(np.maximum(x, 0))]
    with torch.no_grad():
        summaries = torch._dynamo.explain(array_statistics._summaries(((False, None), (True, "tanh"))))(tensors)
        bins = torch._dynamo.explain(array_statistics._binning(((9, False), (9, True))))(
            tensors, torch.tensor([-3.0, 0.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64))
    result["graph breaks"] = [summaries.graph_break_count, bins.graph_break_count]
print(json.dumps(result, default=str))
"""

BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(scope="session")
def backend_runs(tmp_path_factory):
    from conftest import ROOT, run_python

    return {backend: run_json(run_python, BACKEND_RUN, backend=backend, cwd=ROOT) for backend in BACKENDS}


#: float32 rounding (ε = 1.2e-7) accumulated over this model's dot products
#: (at most 80 terms) forward and backward, and through a saturated tanh
#: (1 − tanh² loses the digits tanh shares with 1), stays below this share
#: of each tensor's scale; the weights are the same bits on every backend.
FLOAT32_TOLERANCE = 1e-4
FLOAT64_TOLERANCE = 1e-12
EXACT = ("count", "nan", "inf", "zero_fraction", "dead_fraction", "saturated_fraction", "shape", "dtype",
         "identical_units", "identical_outgoing", "path", "kind", "name", "tag", "activation", "layer_class")


def scale(row) -> float:
    """The root mean square of a row's tensor: what its float32 errors are relative to."""
    return row["norm"] / np.sqrt(row["count"])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_gives_tensorflows_statistics_and_findings(backend_runs, backend):
    reference, run = backend_runs["tensorflow"], backend_runs[backend]
    assert run["notes"] == reference["notes"] == []  # gradients too
    assert run["findings"] == reference["findings"]
    assert [f.split(" in ")[0].split(" layer ")[0] for f in run["findings"]] == ["dead units", "saturated"]
    assert [r["tag"] for r in run["rows"]] == [r["tag"] for r in reference["rows"]]
    assert {r["kind"] for r in run["rows"]} == {"weight", "activation", "gradient"}
    for ours, theirs in zip(run["rows"], reference["rows"]):
        tolerance = FLOAT64_TOLERANCE if theirs["kind"] == "weight" else FLOAT32_TOLERANCE
        for key, value in theirs.items():
            if key in EXACT or value is None or key == "update_ratio":
                assert ours[key] == value, (theirs["tag"], key)
            elif key in ("mean", "min", "max"):  # near zero, compared with the tensor's scale
                assert abs(ours[key] - value) <= tolerance * scale(theirs), (theirs["tag"], key)
            else:
                assert ours[key] == pytest.approx(value, rel=tolerance), (theirs["tag"], key)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_writes_tensorflows_tags_histograms_and_findings(backend_runs, backend):
    reference, run = backend_runs["tensorflow"], backend_runs[backend]
    assert sorted(run["histograms"]) == sorted(reference["histograms"])
    assert sorted(run["scalars"]) == sorted(reference["scalars"])
    assert any(tag.startswith("gradients/") for tag in run["histograms"])
    assert run["text"] == reference["text"]
    rows = {r["tag"]: r for r in reference["rows"]}
    for tag, theirs in reference["histograms"].items():
        ours, theirs = np.array(run["histograms"][tag]), np.array(theirs)
        np.testing.assert_array_equal(ours[:, 2], theirs[:, 2], err_msg=tag)
        tolerance = FLOAT64_TOLERANCE if tag.startswith("weights/") else FLOAT32_TOLERANCE
        np.testing.assert_allclose(ours[:, :2], theirs[:, :2], rtol=0, atol=tolerance * scale(rows[tag]),
                                   err_msg=tag)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_probe_never_changes_the_model_its_optimizer_or_its_gradients(backend_runs, backend):
    run = backend_runs[backend]
    assert run["model unchanged"] and run["optimizer iterations"] == 0
    assert not any(run.get("grads accumulated", []))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_statistics_and_histograms_where_the_tensors_live_equal_numpy_and_tensorflow(backend_runs, backend):
    run = backend_runs[backend]
    for name, (ours, numpy_numbers) in run["statistics"].items():
        assert ours is not None, name
        assert ours.keys() == numpy_numbers.keys(), name
        for key, value in numpy_numbers.items():
            assert ours[key] == (None if value is None else pytest.approx(value, rel=1e-12, abs=1e-15)), (name, key)
    assert all(run["histograms equal tensorflow's"])
    assert run["subnormals left to numpy"]


def test_on_jax_the_probe_and_the_statistics_compile_once_per_model(backend_runs):
    calls = backend_runs["jax"]["layer calls after each log"]
    assert calls[1:] == [calls[0]] * 3  # later logs run the compiled pass: no Python call of the layer
    assert set(backend_runs["jax"]["compiled statistics per model"]) == {1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_the_loss_never_reads_get_no_gradient_on_every_backend(backend_runs, backend):
    # jax.grad gives them zeros, which would read as a vanishing gradient; they are left out as elsewhere.
    assert backend_runs[backend]["gradients of a model with a branch the loss never reads"] == [
        "first", "first", "last", "last"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_event_files_are_written_by_tensorflow_only_on_its_own_backend(backend_runs, backend):
    # A TensorFlow op leaves TensorFlow's threads spinning, which slows PyTorch's for seconds.
    assert backend_runs[backend]["written by tensorflow"] == (backend == "tensorflow")


def test_on_torch_the_statistics_and_histograms_run_without_a_graph_break(backend_runs):
    assert backend_runs["torch"]["graph breaks"] == [0, 0]
