"""Signal propagation of residual networks (Brock, De & Smith 2021): the numbers
against NumPy, the model left as it was, the picture, and the callback's
step-0 scalars (present for a residual network, absent for a plain MLP)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kinit.callbacks import InitDiagnostics, SignalPropagation, signal_propagation
from tensorboard_events import read_events
from test_examples import load_example

L = keras.layers
residual_depth = load_example("residual_depth")
STATISTICS = ("channel_squared_mean", "channel_variance", "residual_variance")


def numpy_statistics(tensor: np.ndarray):
    """Brock et al.'s channel statistics, channels last, written out with NumPy."""
    flat = tensor.astype(np.float64).reshape(-1, tensor.shape[-1])
    return np.mean(np.mean(flat, axis=0) ** 2), np.mean(np.var(flat, axis=0))


def probe_batch(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5, 1.0, (n, 28, 28, 1)).astype("float32")


@pytest.mark.parametrize("normalization", [False, True])
def test_functional_resnet_numbers_equal_numpy(normalization):
    model = residual_depth.build_resnet(14, normalization=normalization, seed=0)
    x = probe_batch()
    before = [np.array(v) for v in model.non_trainable_variables]
    report = signal_propagation(model, x)
    # The training-mode run updated the moving statistics; they are restored.
    for variable, value in zip(model.non_trainable_variables, before):
        np.testing.assert_array_equal(np.array(variable), value)
    # The sums' inputs from a probe model, in training mode like the report's.
    adds = [layer for layer in model.layers if isinstance(layer, L.Add)]
    probe = keras.Model(model.input, [tensor for add in adds for tensor in add.input])
    arrays = [np.asarray(t) for t in probe(x, training=True)]
    pairs = list(zip(arrays[0::2], arrays[1::2]))
    assert [row.path for row in report] == [add.name for add in adds]
    assert [row.block for row in report] == list(range(1, 7))
    for row, (shortcut, branch) in zip(report, pairs):
        squared_mean, variance = numpy_statistics(shortcut + branch)
        assert row.channel_squared_mean == pytest.approx(squared_mean, rel=1e-5)
        assert row.channel_variance == pytest.approx(variance, rel=1e-5)
        assert row.residual_variance == pytest.approx(numpy_statistics(branch)[1], rel=1e-5)
        assert row.residual_path.endswith("_conv2" if not normalization else "_bn2")
        assert row.shape == shortcut.shape


def test_unnormalized_he_explodes_fixup_stays_flat_batch_norm_grows_slowly():
    x = probe_batch(64)
    reports = {variant: signal_propagation(residual_depth.build_variant(variant, 20, seed=0), x)
               for variant in residual_depth.VARIANTS}
    he, fixup, bn = (np.array([row.channel_variance for row in reports[v]]) for v in ("he", "fixup", "he_bn"))
    assert he[-1] / he[0] > 50            # grows by a factor per block
    assert all(row.residual_variance == 0 for row in reports["fixup"])  # every branch starts at zero
    # So within a stage (3 blocks) nothing grows: after the first block's ReLU the sums repeat.
    np.testing.assert_allclose(fixup[[1, 4, 7]], fixup[[2, 5, 8]], rtol=1e-6)
    assert 1 < bn.max() < 5               # BN: each block adds about one unit of variance, per stage


class Block(L.Layer):
    """A residual block written as ``x + f(x)`` inside a custom layer."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = L.Dense(width, activation="relu", name="fc1")
        self.conv2 = L.Dense(width, name="fc2")

    def call(self, x):
        return x + self.conv2(self.conv1(x))


def test_sums_written_as_ops_inside_custom_layers():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    h = L.Dense(8, name="stem")(inputs)
    h = Block(8, name="block1")(h)
    h = Block(8, name="block2")(h)
    model = keras.Model(inputs, L.Dense(2, name="head")(h))
    x = np.random.default_rng(2).normal(size=(64, 8)).astype("float32")
    report = signal_propagation(model, x)
    assert [row.path for row in report] == ["block1/add", "block2/add"]
    stem = np.asarray(model.get_layer("stem")(x))
    block1 = model.get_layer("block1")
    branch1 = np.asarray(block1.conv2(block1.conv1(stem)))
    out1 = stem + branch1
    assert report[0].channel_variance == pytest.approx(numpy_statistics(out1)[1], rel=1e-5)
    assert report[0].residual_variance == pytest.approx(numpy_statistics(branch1)[1], rel=1e-5)
    assert report[0].residual_path == "block1/fc2"


def test_a_model_without_residual_blocks_gives_an_empty_report(tmp_path):
    model = keras.Sequential([keras.Input((4,)), L.Dense(4, activation="relu"), L.Dense(2)])
    report = signal_propagation(model, np.ones((4, 4), "float32"))
    assert isinstance(report, SignalPropagation) and len(report) == 0
    assert str(report) == "No residual blocks found."


def test_table_dataframe_and_picture(tmp_path):
    report = signal_propagation(residual_depth.build_resnet(8, normalization=False, seed=0), probe_batch(8))
    assert str(report).splitlines()[0].split() == list(report.columns)
    assert list(report.to_dataframe().columns) == ["block", "path", "shape", *STATISTICS, "residual_path"]
    path = report.plot(tmp_path / "spp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def fit_with_diagnostics(model, x, y, log_dir):
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[InitDiagnostics(log_dir, (x, y))])
    return read_events(log_dir)


def test_callback_logs_signal_propagation_at_step_0_for_a_residual_network(tmp_path):
    model = residual_depth.build_resnet(8, normalization=True, seed=0)
    x, y = probe_batch(16), np.arange(16) % 10
    expected = signal_propagation(model, x)
    events = fit_with_diagnostics(model, x, y, tmp_path)
    tags = {tag for tag in events.values if tag.startswith("signal_propagation/")}
    assert tags == {f"signal_propagation/{s}/block_{i}" for s in STATISTICS for i in (1, 2, 3)} | {
        "signal_propagation/table", "signal_propagation/plot"}
    for row in expected:
        for statistic in STATISTICS:
            tag = f"signal_propagation/{statistic}/block_{row.block}"
            assert set(events.values[tag]) == {0}  # step 0 only
            assert events.scalar(tag, 0) == pytest.approx(getattr(row, statistic), rel=1e-5)
    assert events.plugin["signal_propagation/plot"] == "images"
    assert events.plugin["signal_propagation/table"] == "text"
    assert "stage1_block1_add" in events.values["signal_propagation/table"][0].item().decode()


def test_callback_logs_no_signal_propagation_for_a_plain_mlp(tmp_path):
    model = keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    x, y = np.random.default_rng(0).normal(size=(16, 6)).astype("float32"), np.arange(16) % 3
    events = fit_with_diagnostics(model, x, y, tmp_path)
    assert events.values  # the rest is logged
    assert not [tag for tag in events.values if tag.startswith("signal_propagation")]


BACKEND_CODE = """
import json, keras, numpy as np
from test_examples import load_example
from kinit.callbacks import signal_propagation
model = load_example("residual_depth").build_variant("he_bn", 8, 0)
x = np.random.default_rng(0).normal(size=(16, 28, 28, 1)).astype("float32")
before = [keras.ops.convert_to_numpy(v).copy() for v in model.non_trainable_variables]
report = signal_propagation(model, x)
after = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
print(json.dumps({"blocks": len(report), "residual": [row.residual_variance for row in report],
                  "restored": all((a == b).all() for a, b in zip(before, after))}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_signal_propagation_on_other_backends(backend):
    import json

    from conftest import ROOT, run_python

    result = run_python(BACKEND_CODE, backend=backend, cwd=ROOT / "tests")
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert (found["blocks"], found["restored"]) == (3, True)
    # Batch normalization gives every residual branch unit variance (ε aside), in training mode.
    assert found["residual"] == pytest.approx([0.998] * 3, abs=0.002)
