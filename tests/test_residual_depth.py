"""examples/residual_depth.py: the ResNet builder, Fixup's rule, the flags, and
the quick mode on a synthetic stand-in for Fashion-MNIST."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

import kinit
from test_examples import EXAMPLES, data_module, load_example

# Its tests share one expensive session fixture: one worker runs them all, once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("residual-depth")]

residual_depth = load_example("residual_depth")
SCRIPT = EXAMPLES / "residual_depth.py"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("depth, normalization, convolutions, adds", [
    (8, False, 1 + 3 * 2 + 2, 3), (20, True, 1 + 9 * 2 + 2, 9), (56, False, 1 + 27 * 2 + 2, 27)])
def test_resnet_has_6n_plus_2_weight_layers_and_3n_residual_blocks(depth, normalization, convolutions, adds):
    model = residual_depth.build_resnet(depth, normalization)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == convolutions  # 6n + 1 convolutions + 2 projection shortcuts
    assert kinds.count("Conv2D") - 2 + kinds.count("Dense") == depth
    assert kinds.count("Add") == adds
    assert (kinds.count("BatchNormalization") > 0) == normalization
    assert model.output_shape == (None, 10)
    assert not any(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D))


def test_fixup_is_the_recipe_with_its_scalars_at_a_tenth_of_the_rate():
    model = residual_depth.build_variant("fixup", 20, seed=0)
    report = kinit.audit(model)
    assert report.ok and not report.unexplained
    rules = {row.variable_path: row.rule for row in report}
    assert rules["stage2_block3_conv2/kernel"] == rules["head/kernel"] == "kinit.Zeros()"
    gain = math.sqrt(2.0) * 9 ** -0.5  # L = 9 residual branches of m = 2 layers
    assert rules["stage1_block1_conv1/kernel"] == (
        f"kinit.HeNormal(gain={gain:.6g}, distribution='normal')")
    assert rules["stem/kernel"] == rules["stage2_block1_shortcut/kernel"] == (
        "kinit.HeNormal(gain=1.41421, distribution='normal')")
    assert rules["stage3_block2_bias1a/bias"] == rules["head_bias/bias"] == "kinit.Zeros()"
    assert rules["stage3_block2_scale/scale"] == "kinit.Ones()"
    # The scalars pass on a tenth of their gradient and compute as kinit's.
    scale = model.get_layer("stage1_block1_scale")
    assert isinstance(scale, kinit.Scale) and isinstance(model.get_layer("head_bias"), kinit.Bias)
    import tensorflow as tf

    x = tf.ones((2, 3))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(scale(x))
    assert float(y) == 6.0 and float(tape.gradient(y, scale.scalar)) == pytest.approx(0.6)
    others = {v: residual_depth.build_variant(v, 8, seed=0) for v in ("he", "he_bn")}
    assert not any(isinstance(layer, (kinit.Scale, kinit.Bias)) for m in others.values() for layer in m.layers)


@pytest.fixture(scope="session")
def quick(tmp_path_factory):
    data_dir = data_module.write_synthetic(tmp_path_factory.mktemp("fashion"), n_train=600, n_test=300)
    output = tmp_path_factory.mktemp("residual_depth") / "run"
    return residual_depth.main(["--quick", "--quiet", "--data-dir", str(data_dir), "--output-dir", str(output)])


def test_quick_mode_writes_table_plots_and_one_tensorboard_run_per_network(quick):
    from tensorboard_events import read_events

    with open(quick.output_dir / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["variant"], row["depth"]) for row in rows] == [
        (variant, str(depth)) for depth in (8, 14) for variant in ("he", "fixup", "he_bn")]
    markdown = (quick.output_dir / "results.md").read_text()
    assert markdown.startswith("| depth | He, no normalization: train loss |")
    assert "Signal propagation at initialization, ResNet-14:" in markdown
    for png in ("signal_propagation.png", "first_epoch_by_depth.png"):
        assert (quick.output_dir / png).read_bytes()[:8] == PNG
    for row in rows:
        run_dir = quick.log_dir / f"{row['variant']}_depth{row['depth']}"
        assert read_events(run_dir / "train").plugin.get("epoch_loss") == "scalars"
        diagnostics = read_events(run_dir / "diagnostics")
        assert diagnostics.plugin["signal_propagation/channel_variance/block_1"] == "scalars"
    assert quick.wall_time_s > 0


def test_quick_mode_keeps_the_signal_propagation_of_every_network(quick):
    by = {(run.variant, run.depth): run for run in quick.runs}
    assert [len(by[(v, 14)].signal) for v in ("he", "fixup", "he_bn")] == [6, 6, 6]
    assert all(row["residual_variance"] == 0 for row in by[("fixup", 14)].signal)
    he = [row["channel_variance"] for row in by[("he", 14)].signal]
    assert he[-1] > 4 * he[0]


def run_script(args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--no-download", "--data-dir", "absent"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--depths", "10"], "argument --depths: must be 6n + 2 for an integer n ≥ 1 (8, 14, 20, …); received '10'"),
    (["--depths", "2"], "argument --depths: must be 6n + 2 for an integer n ≥ 1 (8, 14, 20, …); received '2'"),
    (["--depths", "8", "20", "8"], "argument --depths: 8 given more than once; name each once"),
    (["--variants", "he", "he"], "argument --variants: he given more than once; name each once"),
    (["--variants", "xavier"], "argument --variants: invalid choice: 'xavier'"),
    (["--train-size", "100", "--probe-size", "200"],
     "argument --probe-size: 200 is more than the 100 training examples it is drawn from (--train-size)"),
    (["--learning-rate", "0"], "argument --learning-rate: must be a number > 0; received '0'"),
    (["--output-dir", "old"], "argument --output-dir: old already holds results.csv of an earlier run; "
                              "choose a new directory or remove them"),
])
def test_a_bad_flag_is_one_line_on_stderr_and_nothing_is_written(tmp_path, args, message):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "results.csv").write_text("variant\n")
    before = sorted(tmp_path.rglob("*"))
    process = run_script(args, tmp_path)
    assert process.returncode == 2, process.stderr[-2000:]
    assert process.stderr.splitlines() == [process.stderr.strip()]
    assert process.stderr.startswith(f"residual_depth.py: error: {message}"), process.stderr
    assert sorted(tmp_path.rglob("*")) == before and process.stdout == ""


def test_quick_defaults_yield_to_explicit_flags():
    args = residual_depth.parse_args(["--quick", "--depths", "8", "--train-size", "300"])
    assert (args.depths, args.train_size, args.test_size, args.probe_size) == ([8], 300, 256, 64)
    full = residual_depth.parse_args([])
    assert (full.depths, full.train_size, full.test_size, full.probe_size) == ([8, 20, 32, 56], 10000, 2000, 128)
