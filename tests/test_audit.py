"""kinit.audit: every weight against the rule meant for it.

No false alarm on models initialized by Keras's defaults, by kinit's auto
policy, by hand, or by a registered recipe, over 20 seeds each; a planted
mismatch (a GPT-style projection drawn with σ = 0.02 instead of 0.02/√R) is
named exactly, every time.
"""

from __future__ import annotations

import importlib
import json
import math

import keras
import numpy as np
import pytest

import kinit
import residual_models
from conftest import run_python
from kinit.policy import POLICIES

audit_module = importlib.import_module("kinit.audit")  # the module; kinit.audit is the function
L = keras.layers
SEEDS = range(20)


# --- models ----------------------------------------------------------------------------------

def zoo() -> keras.Model:
    """One model with the common layer kinds, Keras's default initializers."""
    image = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, name="conv")(image)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(x)
    x = L.SeparableConv2D(8, 3, name="separable")(x)
    x = L.Conv2DTranspose(6, 3, name="transposed")(x)
    x = L.GroupNormalization(2, name="gn")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(16, activation="relu", name="image_dense")(x)
    tokens = keras.Input((10,), dtype="int32", name="tokens")
    t = L.Embedding(50, 16, name="embedding")(tokens)
    t = L.MultiHeadAttention(2, 8, name="mha")(t, t)
    t = L.LayerNormalization(name="ln")(t)
    t = L.EinsumDense("abc,cd->abd", (10, 12), bias_axes="d", name="einsum")(t)
    t = L.RMSNormalization(name="rms")(t)
    t = L.GRU(8, return_sequences=True, name="gru")(t)
    t = L.LSTM(8, name="lstm")(t)
    t = L.Dense(8, name="token_dense")(t)
    t = L.PReLU(name="prelu")(t)
    merged = L.Concatenate()([x, t])
    return keras.Model([image, tokens], L.Dense(10, activation="softmax", name="head")(merged), name="zoo")


def gpt(n_layers: int = 2) -> keras.Model:
    """The recipe tests' GPT-style decoder: pre-norm blocks whose attention output
    and MLP projection (``proj_<i>``) end residual branches."""
    return residual_models.gpt_functional(blocks=n_layers)


def gpt2_by_hand(n_layers: int) -> dict:
    """GPT-2's initialization as a policy map: N(0, 0.02²) everywhere, the
    residual projections N(0, (0.02/√R)²) with R = 2 · layers."""
    projection = 0.02 / math.sqrt(2 * n_layers)
    return {
        r"attn_\d+/attention_output": kinit.RandomNormal(0.0, projection),
        r"proj_\d+": kinit.RandomNormal(0.0, projection),
        L.Dense: kinit.RandomNormal(0.0, 0.02),
        L.EinsumDense: kinit.RandomNormal(0.0, 0.02),
        L.Embedding: kinit.RandomNormal(0.0, 0.02),
    }


def plant(variable, stddev: float, seed: int) -> None:
    """Overwrite `variable` with N(0, stddev²) by hand."""
    values = np.random.default_rng(seed).normal(0.0, stddev, tuple(variable.shape))
    variable.assign(values.astype(variable.dtype))


def variable(model, path: str):
    """The model's variable of that path (``layer/sublayer/name``)."""
    (found,) = [v for v in model.weights if v.path == path]
    return found


def named(rows) -> list:
    return [row.variable_path for row in rows]


def largest_z(report) -> float:
    return max(abs(z) for row in report for z in (row.z_mean, row.z_std) if z is not None)


# --- no false alarm --------------------------------------------------------------------------

def test_keras_defaults_match_over_20_seeds():
    worst = 0.0
    for seed in SEEDS:
        keras.utils.set_random_seed(seed)
        report = kinit.audit(zoo())
        assert report.mismatches == [], (seed, str(report))
        worst = max(worst, largest_z(report))
    assert worst < 5.0  # the largest |z| of 20 × ~15 random weights × 2 checks
    assert {row.source for row in report} == {"declared"}
    assert report.unexplained == []


def test_kinit_auto_matches_over_20_seeds():
    model = zoo()
    for seed in SEEDS:
        kinit.initialize(model, seed=seed)
        report = kinit.audit(model)
        assert report.mismatches == [], (seed, str(report))
    # PReLU's slopes have no "auto" rule: their layer's own initializer explains them.
    assert {row.variable_path for row in report if row.source != "initialize"} == {"prelu/alpha"}
    assert report.unexplained == []


def test_gpt2_by_hand_matches_over_20_seeds_and_the_planted_projection_is_named_every_time():
    model = gpt(n_layers=2)
    for seed in SEEDS:
        kinit.initialize(model, gpt2_by_hand(2), seed=seed)
        assert kinit.audit(model).mismatches == [], seed
        # Half the seeds plant into an MLP projection, half into an attention output.
        target = f"proj_{seed % 2}/kernel" if seed % 4 < 2 else f"attn_{seed % 2}/attention_output/kernel"
        plant(variable(model, target), 0.02, seed)
        report = kinit.audit(model)
        assert named(report.mismatches) == [target], (seed, str(report))
        assert report.mismatches[0].z_std > 20


@pytest.mark.parametrize("name", ["gpt2", "fixup", "deepnet"])
def test_each_registered_recipe_matches_over_20_seeds(name):
    if name not in POLICIES:
        pytest.skip(f"policy {name!r} is not registered in this checkout")
    from test_examples import load_example

    residual_depth = load_example("residual_depth")
    models = [gpt(n_layers=2), residual_depth.build_resnet(8, normalization=False)]
    fitted = 0
    for model in models:
        try:
            kinit.initialize(model, policy=name, seed=0)
        except ValueError:
            continue  # the recipe is not for this kind of model
        fitted += 1
        for seed in SEEDS:
            kinit.initialize(model, policy=name, seed=seed)
            report = kinit.audit(model)
            assert report.mismatches == [], (name, model.name, seed, str(report))
    assert fitted, f"policy {name!r} fits neither a GPT-style model nor a ResNet"


def test_the_gpt2_recipe_reproducer():
    """Initialize with "gpt2", overwrite one projection with N(0, 0.02²): audit names exactly it."""
    if "gpt2" not in POLICIES:
        pytest.skip("policy 'gpt2' is not registered in this checkout")
    model = gpt(n_layers=2)
    kinit.initialize(model, policy="gpt2", seed=0)
    assert kinit.audit(model).mismatches == []
    plant(model.get_layer("proj_1").kernel, 0.02, seed=1)
    assert named(kinit.audit(model).mismatches) == ["proj_1/kernel"]


# --- by hand ---------------------------------------------------------------------------------

def hand_model() -> keras.Model:
    ki = keras.initializers
    inputs = keras.Input((16,))
    x = L.Dense(16, kernel_initializer=ki.Constant(0.3), bias_initializer="ones", name="constant")(inputs)
    x = L.Dense(16, kernel_initializer=ki.RandomNormal(1.0, 0.1), name="normal")(x)
    x = L.Dense(16, kernel_initializer=ki.TruncatedNormal(0.0, 0.5), name="truncated")(x)
    x = L.Dense(16, kernel_initializer=ki.RandomUniform(-0.2, 0.5), name="uniform")(x)
    x = L.Dense(16, kernel_initializer=ki.Identity(2.0), name="identity")(x)
    x = L.Dense(24, kernel_initializer=ki.Orthogonal(3.0), name="orthogonal")(x)
    x = L.Dense(24, kernel_initializer=ki.VarianceScaling(3.0, "fan_out", "untruncated_normal"), name="vs")(x)
    x = L.Dense(32, kernel_initializer=kinit.TruncatedNormal(0.0, 1.0, minval=0.5, maxval=2.0), name="tail")(x)
    x = L.Dense(32, kernel_initializer=kinit.Sparse(0.25, 0.3), name="sparse")(x)
    x = L.Dense(64, kernel_initializer=kinit.ZerO(), name="zero_init")(x)
    x = L.Dense(64, kernel_initializer=kinit.HeUniform(mode="fan_out"), name="he_uniform")(x)
    x = L.Reshape((8, 8, 1))(x)
    x = L.Conv2D(4, 3, padding="same", kernel_initializer=kinit.DeltaOrthogonal(2.0), name="delta")(x)
    x = L.Conv2D(8, 3, padding="same", kernel_initializer=kinit.ConvolutionOrthogonal(), name="conv_orth")(x)
    x = L.Conv2D(8, 3, padding="same", kernel_initializer=kinit.Dirac(), name="dirac",
                 bias_initializer=kinit.Constant([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))(x)
    x = L.Conv2DTranspose(4, 3, kernel_initializer=kinit.GlorotNormal(kernel_layout="transposed"),
                          name="transposed")(x)
    return keras.Model(inputs, x, name="by_hand")


def test_initializers_chosen_by_hand_match_over_20_seeds():
    for seed in SEEDS:
        keras.utils.set_random_seed(seed)
        report = kinit.audit(hand_model())
        assert report.mismatches == [], (seed, str(report))
    checks = {row.path: row.check for row in report if row.weight == "kernel"}
    assert checks == {
        "constant": "exact", "normal": "random", "truncated": "random", "uniform": "random",
        "identity": "exact", "orthogonal": "orthogonal", "vs": "random", "tail": "random", "sparse": "sparse",
        "zero_init": "exact", "he_uniform": "random", "delta": "delta orthogonal",
        "conv_orth": "convolution orthogonal", "dirac": "exact", "transposed": "random",
    }
    assert report.unexplained == []


def test_constants_set_by_initialize_match_and_a_hand_edit_is_caught():
    model = hand_model()
    kinit.initialize(model, {"constant": kinit.Constant(0.5), r".*/bias": kinit.Constant(0.1)}, seed=0)
    report = kinit.audit(model)
    assert report.mismatches == []
    bias_rows = [row for row in report if row.weight == "bias"]
    assert {(row.source, row.rule) for row in bias_rows} == {("initialize", "kinit.Constant(value=0.1)")}
    model.get_layer("dirac").bias.assign(np.full(8, 0.1, "float64"))  # the same float32 value, by hand
    model.get_layer("constant").kernel.assign(np.full((16, 16), 0.5, "float32") + np.eye(16, dtype="float32"))
    report = kinit.audit(model)
    assert named(report.mismatches) == ["constant/kernel"]
    assert "16 of 256 values differ" in report.mismatches[0].detail


@pytest.mark.parametrize("layer_name, planted, words", [
    ("orthogonal", lambda w: w + 1e-3, "WWᵀ of the 16×24 kernel is not 3²·I"),
    ("uniform", lambda w: w * 1.5, "outside the rule's bounds"),
    ("normal", lambda w: w + 0.05, "mean"),
    ("identity", lambda w: w * 0.5, "differ from the rule's exact values"),
    ("sparse", lambda w: w + (w == 0) * 0.01, "zero weights"),
    ("delta", lambda w: w + 1e-3, "outside the centre tap"),
    ("conv_orth", lambda w: w * 1.01, "W(ω)W(ω)* at every frequency is not 1²·I"),
    ("tail", lambda w: w * -1.0, "outside the rule's bounds"),
])
def test_each_check_catches_its_kind_of_mistake(layer_name, planted, words):
    keras.utils.set_random_seed(0)
    model = hand_model()
    kernel = model.get_layer(layer_name).kernel
    kernel.assign(planted(keras.ops.convert_to_numpy(kernel)).astype("float32"))
    report = kinit.audit(model)
    assert named(report.mismatches) == [f"{layer_name}/kernel"]
    assert words in report.mismatches[0].detail


def test_nan_values_differ():
    model = hand_model()
    model.get_layer("normal").bias.assign(np.full(16, np.nan, "float32"))
    (row,) = kinit.audit(model).mismatches
    assert (row.variable_path, row.detail) == ("normal/bias", "16 of 16 values are NaN or infinite")


# --- what is reported ------------------------------------------------------------------------

class Scaled(L.Layer):
    """A custom layer whose weights no attribute describes."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")
        self.steps = self.add_weight(shape=(), initializer="zeros", dtype="int32", name="steps", trainable=False)

    def call(self, x):
        return x * self.w


def test_weights_no_rule_explains_are_listed_as_such():
    inputs = keras.Input((4,))
    x = Scaled(name="scaled")(inputs)
    x = L.Dense(4, kernel_initializer=kinit.ConvolutionAware(), name="aware")(x)
    report = kinit.audit(keras.Model(inputs, x))
    verdicts = {row.variable_path: (row.verdict, row.source) for row in report}
    assert verdicts == {
        "scaled/w": ("no rule", "none"),
        "scaled/steps": ("no rule", "none"),
        "aware/kernel": ("not checked", "declared"),
        "aware/bias": ("matches", "declared"),
    }
    assert named(report.unexplained) == ["scaled/w", "scaled/steps", "aware/kernel"]
    assert report.ok
    text = str(report)
    assert "? scaled/w: neither kinit.initialize nor the layer says how it starts" in text
    assert "? aware/kernel: kinit has no model of what kinit.ConvolutionAware() draws" in text


def test_rows_give_layout_fans_rule_and_moments():
    keras.utils.set_random_seed(0)
    report = kinit.audit(zoo())
    rows = {row.variable_path: row for row in report}
    transposed = rows["transposed/kernel"]
    assert (transposed.layout, transposed.fan_in, transposed.fan_out) == ("transposed", 72, 54)
    # Keras's GlorotUniform reads a transposed kernel in the standard layout: said, not hidden.
    assert "keras.GlorotUniform() reads fans (54, 72), not the transposed layout's (72, 54)" in transposed.detail
    depthwise = rows["depthwise/kernel"]
    assert (depthwise.layout, depthwise.fan_in, depthwise.fan_out) == ("depthwise", 9, 18)
    query = rows["mha/query/kernel"]
    assert (query.layout, query.fan_in, query.fan_out) == ("abc,cde->abde", 16, 16)
    assert query.expected_std == pytest.approx(math.sqrt(2 / 32))  # EinsumDense's axes, as Keras hands them over
    assert rows["lstm/lstm_cell/bias"].rule == "keras.Zeros() with forget gate 1 (unit_forget_bias)"
    assert rows["rms/scale"].reason == "RMSNormalization builds scale with 'ones'"
    assert rows["conv/bias"].layout is None and rows["conv/bias"].fan_in is None
    assert rows["conv/kernel"].expected_std == pytest.approx(math.sqrt(2 / (27 + 72)))
    frame = report.to_dataframe()
    assert list(frame.columns[:13]) == list(report.columns)
    assert len(frame) == len(report) == len(zoo().weights)
    assert str(report).splitlines()[0].split() == list(report.columns)


def test_the_last_initialize_wins_and_unchanged_weights_keep_their_rule():
    model = gpt(n_layers=1)
    kinit.initialize(model, gpt2_by_hand(1), seed=0)
    kinit.initialize(model, {"fc_0": "orthogonal", ".*": None}, seed=1)
    rows = {row.variable_path: row for row in kinit.audit(model)}
    assert rows["fc_0/kernel"].rule == "kinit.Orthogonal()"
    assert rows["proj_0/kernel"].rule == f"kinit.RandomNormal(stddev={0.02 / math.sqrt(2):.6g})"
    assert all(row.verdict == "matches" for row in rows.values())


def test_k_and_its_false_alarm_rate():
    assert audit_module.DEFAULT_K == 6.0
    assert audit_module.false_alarm_probability(6.0) == pytest.approx(1.97e-9, rel=0.01)
    with pytest.raises(ValueError, match="argument `k`"):
        kinit.audit(gpt(1), k=-1)


@pytest.mark.parametrize("draw, kurtosis", [
    (lambda rng, size: rng.standard_normal(size), 3.0),
    (lambda rng, size: rng.uniform(-math.sqrt(3), math.sqrt(3), size), 1.8),
])
@pytest.mark.parametrize("n", [4, 8, 64, 512])
def test_the_variance_z_is_calibrated_also_for_few_values(draw, kurtosis, n):
    """At k = 3 each side's nominal rate is 0.135 %: the Wilson–Hilferty scale
    keeps both sides below 1.5 times that down to 4 values."""
    rng = np.random.default_rng(0)
    variances = draw(rng, (40000 if n < 512 else 10000, n)).var(axis=1, ddof=1)
    z = audit_module.variance_z(variances, 1.0, n, kurtosis)
    one_side = audit_module.false_alarm_probability(3.0) / 2
    assert np.mean(z < -3.0) <= 1.5 * one_side and np.mean(z > 3.0) <= 1.5 * one_side


def test_keras_truncated_normal_on_torch_may_leave_a_few_values_outside():
    allowed = audit_module._allowed_strays(65536, audit_module.implied_module.KERAS_TORCH_TRUNCATED_STRAY, 6.0)
    assert 2 <= allowed <= 8  # 0.28 expected; P(more than `allowed`) < 2·10⁻⁹
    assert audit_module._allowed_strays(65536, 0.0, 6.0) == 0


# --- other backends --------------------------------------------------------------------------

BACKEND_CODE = """
import json, keras, numpy as np, kinit
L = keras.layers
keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 3))
x = L.Conv2D(8, 3, name="conv")(inputs)
x = L.BatchNormalization(name="bn")(x)
x = L.Reshape((36, 8))(x)
x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
x = L.LSTM(8, name="lstm")(x)
x = L.Dense(256, kernel_initializer=keras.initializers.TruncatedNormal(0.0, 0.1), name="wide")(x)
x = L.Dense(256, kernel_initializer="orthogonal", name="square")(x)
model = keras.Model(inputs, x)
out = {"keras": [r.variable_path for r in kinit.audit(model).mismatches]}
kinit.initialize(model, seed=3)
out["auto"] = [r.variable_path for r in kinit.audit(model).mismatches]
kernel = model.get_layer("wide").kernel
kernel.assign(keras.ops.convert_to_numpy(kernel) * 1.2)
out["planted"] = [r.variable_path for r in kinit.audit(model).mismatches]
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_audit_on_other_backends(backend):
    result = run_python(BACKEND_CODE, backend=backend)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"keras": [], "auto": [], "planted": ["wide/kernel"]}


def test_lsuv_rescalings_are_part_of_the_rule():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 32)).astype("float32")
    layers = [L.Dense(32, activation="relu", name=f"dense_{i}") for i in range(3)]
    model = keras.Sequential([keras.Input((32,)), *layers, L.Dense(4, name="head")])
    kinit.lsuv(model, x, seed=0)
    report = kinit.audit(model)
    assert report.mismatches == [] and {row.source for row in report} == {"lsuv"}
    assert report[2].rule.startswith("kinit.Orthogonal() × ")  # dense_1: orthogonal, rescaled
    fresh = keras.Sequential([keras.Input((32,)), L.Dense(64, activation="relu", name="a"), L.Dense(4, name="b")])
    kinit.lsuv(fresh, x, orthogonal_first=False)
    rules = {row.variable_path: row.rule for row in kinit.audit(fresh)}
    assert rules["a/kernel"].startswith("keras.GlorotUniform() × ") and rules["a/bias"] == "kinit.Zeros()"
    kernel = fresh.get_layer("a").kernel
    kernel.assign(keras.ops.convert_to_numpy(kernel) * 1.5)
    assert named(kinit.audit(fresh).mismatches) == ["a/kernel"]


class Net(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.hidden = L.Dense(16, activation="relu", name="hidden")
        self.out = L.Dense(3, name="out")

    def call(self, x):
        return self.out(self.hidden(x))


def test_a_subclassed_model_built_on_data():
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    model = Net()
    model(x)
    assert [row.variable_path for row in kinit.audit(model, x=x[:2])] == [
        "hidden/kernel", "hidden/bias", "out/kernel", "out/bias"]
    kinit.initialize(model, seed=0, x=x)
    report = kinit.audit(model, x=x)
    assert report.ok and {row.source for row in report} == {"initialize"}
    assert report[0].rule == "kinit.HeNormal(gain=1.41421)"
