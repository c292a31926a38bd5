"""What InitDiagnostics writes, read back from the event files and checked
against the same tensors recomputed here with NumPy."""

import keras
import numpy as np
import pytest

from kinit.callbacks import InitDiagnostics
from tensorboard_events import read_events

# Its tests share one expensive session fixture: one worker runs them all, once.
pytestmark = pytest.mark.xdist_group("callback-events")

STEPS = (0, 1, 2)
LAYERS = ("hidden", "out")
BUCKETS = 12


class WeightRecorder(keras.callbacks.Callback):
    """The model's weights at every step the diagnostics log."""

    def __init__(self):
        super().__init__()
        self.steps = {}

    def on_train_begin(self, logs=None):
        self.steps[0] = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.steps[epoch + 1] = [np.array(w) for w in self.model.get_weights()]


def numpy_tensors(weights, x, y):
    """Every logged tensor of the 2-layer ReLU regression, by tag, in float64."""
    w1, b1, w2, b2 = (w.astype(np.float64) for w in weights)
    pre = x @ w1 + b1
    hidden = np.maximum(pre, 0.0)
    out = hidden @ w2 + b2
    d_out = 2.0 * (out - y) / len(x)           # mean squared error, mean over the batch
    d_pre = (d_out @ w2.T) * (pre > 0)
    return {
        "weights/hidden/kernel": w1, "weights/hidden/bias": b1,
        "weights/out/kernel": w2, "weights/out/bias": b2,
        "activations/hidden/output": hidden, "activations/out/output": out,
        "gradients/hidden/kernel": x.T @ d_pre, "gradients/hidden/bias": d_pre.sum(0),
        "gradients/out/kernel": hidden.T @ d_out, "gradients/out/bias": d_out.sum(0),
    }


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = (x[:, :1] - x[:, 1:2]).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, "relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    log_dir = tmp_path_factory.mktemp("events")
    recorder = WeightRecorder()
    probe = (x[:8], y[:8])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[recorder, InitDiagnostics(log_dir, probe, buckets=BUCKETS)])
    expected = {step: numpy_tensors(recorder.steps[step], x[:8].astype(np.float64), y[:8])
                for step in STEPS}
    return read_events(log_dir), expected


def test_histograms_for_every_weight_activation_and_gradient_at_steps_0_1_2(run):
    events, expected = run
    assert events.tags("histograms") == set(expected[0])
    for tag in expected[0]:
        assert sorted(events.values[tag]) == list(STEPS), tag
        assert all(h.shape == (BUCKETS, 3) for h in events.values[tag].values())


def test_histogram_counts_and_edges_match_the_tensors(run):
    events, expected = run
    for step in STEPS:
        for tag, tensor in expected[step].items():
            histogram = events.values[tag][step]
            assert histogram[:, 2].sum() == tensor.size, (tag, step)
            if tag.startswith("weights/"):  # the very values: edges exactly [min, max]
                assert (histogram[0, 0], histogram[-1, 1]) == (tensor.min(), tensor.max())
            else:  # float32 forward pass versus float64 here
                np.testing.assert_allclose([histogram[0, 0], histogram[-1, 1]],
                                           [tensor.min(), tensor.max()], rtol=1e-5, atol=1e-6)


def test_scalars_equal_the_numpy_recomputation(run):
    events, expected = run
    for step in STEPS:
        for layer in LAYERS:
            activation = expected[step][f"activations/{layer}/output"]
            units_dead = np.all(activation == 0, axis=0).mean()
            want = {
                "activation_mean": activation.mean(), "activation_std": activation.std(),
                "activation_signal": np.sqrt(activation.var(axis=0).mean()),
                "activation_zero_fraction": (activation == 0).mean(),
                "activation_dead_fraction": units_dead, "activation_nan": 0, "activation_inf": 0,
            }
            for stat, value in want.items():
                assert events.scalar(f"{stat}/{layer}/output", step) == pytest.approx(value, rel=1e-4, abs=1e-6)
            for name in ("kernel", "bias"):
                weight = expected[step][f"weights/{layer}/{name}"]
                gradient = expected[step][f"gradients/{layer}/{name}"]
                assert events.scalar(f"weight_std/{layer}/{name}", step) == pytest.approx(weight.std(), rel=1e-5, abs=1e-7)
                assert events.scalar(f"weight_norm/{layer}/{name}", step) == pytest.approx(np.linalg.norm(weight), rel=1e-5)
                assert events.scalar(f"gradient_norm/{layer}/{name}", step) == pytest.approx(np.linalg.norm(gradient), rel=1e-4)
                if step > 0:
                    previous = expected[step - 1][f"weights/{layer}/{name}"]
                    ratio = np.linalg.norm(weight - previous) / np.linalg.norm(weight)
                    assert events.scalar(f"weight_update_ratio/{layer}/{name}", step) == pytest.approx(ratio, rel=1e-4)


def test_no_update_ratio_before_there_is_an_update(run):
    events, _ = run
    assert 0 not in events.values["weight_update_ratio/hidden/kernel"]


def test_healthy_run_says_so_once_at_step_0(run):
    events, _ = run
    assert events.tags("text") == {"findings"}
    assert {step: text.item().decode() for step, text in events.values["findings"].items()} == {
        0: "No problems found at step 0."}


def test_update_ratio_spans_the_epochs_since_the_previous_log(tmp_path):
    keras.utils.set_random_seed(12)
    x = np.random.default_rng(12).normal(size=(16, 6)).astype("float32")
    y = x[:, :1] - x[:, 1:2]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    recorder = WeightRecorder()
    model.fit(x, y, batch_size=8, epochs=4, verbose=0,
              callbacks=[recorder, InitDiagnostics(tmp_path, (x[:8], y[:8]), freq=2)])
    ratios = read_events(tmp_path).values["weight_update_ratio/out/kernel"]
    assert sorted(ratios) == [2, 4]
    for step in (2, 4):
        now, before = recorder.steps[step][0], recorder.steps[step - 2][0]
        assert float(ratios[step]) == pytest.approx(np.linalg.norm(now - before) / np.linalg.norm(now), rel=1e-4)


def tensorboard_view(log_dir) -> dict:
    """``{run: {tag: steps}}`` as TensorBoard serves them at its defaults: it
    keeps a reservoir sample of each tag's steps (500 per histogram tag,
    1000 per scalar, 10 per text)."""
    from tensorboard.backend.event_processing import data_ingester, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    return {run: {tag: {event.step for event in multiplexer.Tensors(run, tag)} for tag in tags["tensors"]}
            for run, tags in multiplexer.Runs().items()}


@pytest.mark.slow
def test_the_initialization_stays_in_view_however_long_the_run(tmp_path):
    x = np.random.default_rng(13).normal(size=(4, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    callback = InitDiagnostics(tmp_path, (x, x[:, :1]), buckets=3)
    callback.set_model(model)
    callback.on_train_begin()  # step 0
    for step in range(1, 1001):  # a thousand later logs, as many epochs would make
        callback.log(step)
    callback.on_train_end()
    runs = tensorboard_view(tmp_path)
    main, initialization = runs["."], runs["initialization"]
    histograms = [tag for tag in main if tag.split("/")[0] in ("weights", "activations", "gradients")]
    assert len(histograms) == 5 and all(1000 in main[tag] and len(main[tag]) == 500 for tag in histograms)
    # Step 0 is sampled away from the main run's histograms, and the initialization run holds it for every tag.
    assert not any(0 in main[tag] for tag in histograms)
    assert set(initialization) == {tag for tag in main if not tag.startswith("weight_update_ratio/")}
    assert all(steps == {0} for steps in initialization.values()) and "findings" in initialization
