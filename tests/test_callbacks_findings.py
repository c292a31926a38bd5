"""Health findings on models built to have (or not have) each problem."""

import functools
import logging
import re

import keras
import numpy as np
import pytest

import kinit
from kinit.callbacks import InitDiagnostics, Thresholds, diagnose
from kinit.callbacks.findings import find_problems
from tensorboard_events import read_events

RNG = np.random.default_rng(5)
X = RNG.normal(size=(64, 16)).astype("float32")
Y = RNG.integers(0, 4, size=64)


def mlp(depth, activation, kernel_initializer, bias_initializer="zeros", width=32):
    hidden = [keras.layers.Dense(width, activation, kernel_initializer=kernel_initializer,
                                 bias_initializer=bias_initializer, name=f"hidden_{i}")
              for i in range(depth)]
    model = keras.Sequential([keras.Input((16,)), *hidden, keras.layers.Dense(4, "softmax", name="head")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def problems(findings, kind):
    return [f for f in findings if f.startswith(kind)]


def test_zeros_initialization_is_reported_symmetric_at_step_0(tmp_path, caplog):
    model = mlp(2, "tanh", kinit.Zeros())
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:16], Y[:16]))])
    text = read_events(tmp_path).values["findings"][0].item().decode()
    assert "symmetric units in 'hidden_0'" in text
    # hidden_1's units feed the head's random kernel rows: they part (see below).
    assert "symmetric units in 'hidden_1'" not in text and "symmetric units in 'head'" not in text
    step_0 = [r.getMessage() for r in caplog.records if "step 0" in r.getMessage()]
    assert len(step_0) == 1 and "symmetric units in 'hidden_0'" in step_0[0]


def test_deep_sigmoid_with_tiny_normal_weights_vanishes():
    model = mlp(20, "sigmoid", kinit.RandomNormal(stddev=0.01, seed=1))
    findings = diagnose(model, X, Y).findings
    assert len(problems(findings, "vanishing signal")) == 1
    assert len(problems(findings, "vanishing gradients")) == 1


def test_large_negative_bias_kills_relu_units():
    model = mlp(2, "relu", kinit.HeNormal(seed=2), bias_initializer=keras.initializers.Constant(-20.0))
    assert problems(diagnose(model, X).findings, "dead units") == [
        f"dead units in 'hidden_{i}': 100% of its units output zero for every probe example "
        "(threshold 50%)" for i in (0, 1)]


def test_healthy_he_relu_mlp_has_no_findings():
    model = mlp(4, "relu", kinit.HeNormal(seed=3))
    report = diagnose(model, X, Y)
    assert report.findings == [] and report.notes == []


def test_dead_fraction_threshold_is_honoured():
    half_dead = keras.initializers.Constant(np.repeat([-20.0, 0.0], 16))
    model = mlp(1, "relu", kinit.HeNormal(seed=4), bias_initializer=half_dead)
    assert problems(diagnose(model, X, dead_fraction=0.5).findings, "dead units")
    assert not problems(diagnose(model, X, dead_fraction=0.6).findings, "dead units")


def test_large_tanh_weights_saturate():
    model = mlp(1, "tanh", kinit.RandomNormal(stddev=5.0, seed=5))
    assert problems(diagnose(model, X).findings, "saturated layer 'hidden_0'")


def test_large_linear_weights_explode():
    model = mlp(4, "linear", kinit.RandomNormal(stddev=1.0, seed=6))
    assert problems(diagnose(model, X).findings, "exploding signal")


@pytest.mark.parametrize("argument, value", [
    ("vanishing_factor", 0.5), ("exploding_factor", "big"), ("dead_fraction", 1.5),
    ("saturated_fraction", 0.0),
])
def test_bad_thresholds_fail_naming_the_argument(argument, value):
    with pytest.raises(ValueError, match=f"InitDiagnostics: argument `{argument}`"):
        InitDiagnostics("logs", X[:8], **{argument: value})



def test_softmax_head_with_small_logits_is_not_vanishing():
    # A classifier started with tiny logits (a common deliberate choice)
    # outputs probabilities near 1/classes for every example: they vary little
    # across examples, but no signal is lost below them and gradients flow.
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, "relu", kernel_initializer=kinit.HeNormal(seed=0), name="hidden"),
        keras.layers.Dense(4, "softmax", kernel_initializer=kinit.RandomNormal(stddev=1e-3, seed=1), name="head"),
    ])
    rows = {r["path"]: r for r in diagnose(model, X).rows if r["kind"] == "activation"}
    assert rows["head"]["signal"] < rows["hidden"]["signal"] / 100  # what used to be read as vanishing
    assert problems(diagnose(model, X).findings, "vanishing signal") == []


def symmetric_layers(findings):
    return [f.split("'")[1] for f in problems(findings, "symmetric units")]


def test_a_zero_initialized_output_layer_is_not_symmetric():
    # Its units feed the loss directly, each with its own target: they get
    # different gradients and part at the first step (e.g. ViT's zero head).
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, "relu", kernel_initializer=kinit.HeNormal(seed=0), name="hidden"),
        keras.layers.Dense(4, kernel_initializer="zeros", name="logits"),
        keras.layers.Softmax(name="probabilities"),
    ])
    assert symmetric_layers(diagnose(model, X).findings) == []


def test_symmetry_needs_identical_outgoing_weights_too():
    # All-zero kernels: a unit of hidden_0 is read by hidden_1's zero kernel
    # rows (stuck for ever); hidden_1's units are read by the head's random
    # rows, so their biases, and then their outputs, part at the first step.
    model = mlp(2, "tanh", kinit.Zeros())
    assert symmetric_layers(diagnose(model, X, Y).findings) == ["hidden_0"]
    # Through a batch normalization with equal per-unit weights, still stuck.
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(8, kernel_initializer="ones", name="hidden")(inputs)
    normalized = keras.layers.BatchNormalization(name="norm")(hidden)
    outputs = keras.layers.Dense(2, kernel_initializer="ones", name="head")(keras.layers.ReLU()(normalized))
    assert symmetric_layers(diagnose(keras.Model(inputs, outputs), X).findings) == ["hidden"]


def test_a_kernel_is_paired_with_the_bias_beside_it():
    def row(name, std=0.0, **statistics):
        return {"path": "attention", "kind": "weight", "name": name, "std": std, "nan": 0, "inf": 0,
                "identical_units": None, "identical_outgoing": None, **statistics}

    rows = [row("query/kernel", identical_units=True, identical_outgoing=True), row("query/bias", std=0.3),
            row("key/kernel", std=0.2), row("key/bias")]
    assert find_problems(rows, Thresholds()) == []
    rows[1]["std"] = 0.0
    assert [f.path for f in find_problems(rows, Thresholds())] == ["attention"]


class HeadFirst(keras.Model):
    """Assigns its head before its body: `model.layers` lists the head first."""

    def __init__(self):
        super().__init__(name="head_first")
        self.head = keras.layers.Dense(4, "softmax", name="head")
        self.body = [keras.layers.Dense(32, "sigmoid", kernel_initializer=kinit.RandomNormal(stddev=0.01, seed=i),
                                        name=f"hidden_{i}") for i in range(8)]

    def call(self, x):
        for layer in self.body:
            x = layer(x)
        return self.head(x)


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called")
def test_gradients_are_compared_in_the_order_the_layers_run():
    model = HeadFirst()
    model.compile("sgd", "sparse_categorical_crossentropy")
    findings = diagnose(model, X, Y).findings
    (vanishing,) = problems(findings, "vanishing gradients")
    assert "last layer 'head'" in vanishing and "first layer 'hidden_0'" in vanishing
    assert problems(findings, "exploding gradients") == []


def test_integer_outputs_are_no_reference_for_the_signal():
    # Token ids (up to 500) are indices, not a signal; the embedding's small
    # uniform(±0.05) vectors are a healthy start.
    tokens = RNG.integers(0, 500, size=(64, 5))
    model = keras.Sequential([
        keras.Input((5,), dtype="int64"),
        keras.layers.IntegerLookup(vocabulary=np.arange(500), name="lookup"),
        keras.layers.Embedding(501, 8, name="embedding"),
        keras.layers.GlobalAveragePooling1D(name="pool"),
        keras.layers.Dense(4, "tanh", name="head"),
    ])
    report = diagnose(model, tokens)
    lookup = next(r for r in report.rows if r["path"] == "lookup")
    assert lookup["dtype"].startswith("int") and lookup["signal"] > 100
    assert problems(report.findings, "vanishing signal") == []
    # A collapse after the embedding is still measured against it.
    model.get_layer("head").kernel.assign(np.full((8, 4), 1e-6))
    (vanishing,) = problems(diagnose(model, tokens).findings, "vanishing signal")
    assert "at 'embedding'" in vanishing and "at 'head'" in vanishing


def test_activation_layers_and_partial_activations_are_recognized():
    leaky = functools.partial(keras.activations.leaky_relu, negative_slope=0.1)
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, leaky, kernel_initializer=kinit.HeNormal(seed=0), name="leaky_dense"),
        keras.layers.LeakyReLU(name="leaky"),
        keras.layers.ELU(name="elu"),
        keras.layers.Dense(50, kernel_initializer=kinit.RandomNormal(stddev=0.01, seed=1), name="logits"),
        keras.layers.Softmax(name="probabilities"),
    ])
    report = diagnose(model, X)
    activations = {r["path"]: r["activation"] for r in report.rows if r["kind"] == "activation"}
    assert activations == {"leaky_dense": "leaky_relu", "leaky": "leaky_relu", "elu": "elu",
                           "logits": "linear", "probabilities": "softmax"}
    # 50 probabilities near 1/50 vary little: a Softmax layer is no signal either.
    assert problems(report.findings, "vanishing signal") == []


def test_gradients_growing_towards_the_input_explode():
    # Linear, no biases: the first layer's tiny weights shrink what the later
    # layers see (their gradients), while the later unit-scale weights pass
    # the loss gradient back to the first layer undiminished.
    scales = {"first": 1e-4, "middle": 1.0, "last": 1.0}
    model = keras.Sequential([keras.Input((16,))] + [
        keras.layers.Dense(1 if name == "last" else 32, use_bias=False, name=name,
                           kernel_initializer=kinit.RandomNormal(stddev=scale, seed=i))
        for i, (name, scale) in enumerate(scales.items())])
    model.compile("sgd", "mse")
    targets = RNG.normal(size=(64, 1))
    findings = diagnose(model, X, targets).findings
    w_first, w_middle, w_last = (w.astype(np.float64) for w in model.get_weights())
    x = X.astype(np.float64)
    h_first = x @ w_first
    h_middle = h_first @ w_middle
    d_out = 2 * (h_middle @ w_last - targets) / len(x)
    d_middle = d_out @ w_last.T

    def rms(gradient):
        return np.linalg.norm(gradient) / np.sqrt(gradient.size)

    first, last = rms(x.T @ (d_middle @ w_middle.T)), rms(h_middle.T @ d_out)
    assert first / last > 100
    (finding,) = problems(findings, "exploding gradients")
    numbers = re.fullmatch(r"exploding gradients: gradient RMS is (\S+) at the last layer 'last' and "
                           r"(\S+) at the first layer 'first' \(up (\S+)x; threshold 100x\)", finding)
    assert [float(n) for n in numbers.groups()] == pytest.approx([last, first, first / last], rel=2e-3)


class ZeroTower(keras.Model):
    """A subclassed model: constant hidden kernels read through ``keras.ops.tanh``."""

    def __init__(self):
        super().__init__(name="tower")
        self.head = keras.layers.Dense(2, kernel_initializer="ones", name="head")
        self.hidden = keras.layers.Dense(8, kernel_initializer="ones", name="hidden")

    def call(self, x):
        return self.head(keras.ops.tanh(self.hidden(x)))


def test_symmetric_units_are_found_in_a_subclassed_model_whose_wiring_is_traced():
    model = ZeroTower()
    model(X)
    assert symmetric_layers(diagnose(model, X).findings) == ["hidden"]
    # A product of the hidden units with something else tells them apart: no claim.

    class Gated(ZeroTower):
        def call(self, x):
            h = self.hidden(x)
            return self.head(h * keras.ops.arange(8, dtype="float32"))

    gated = Gated()
    gated(X)
    assert symmetric_layers(diagnose(gated, X).findings) == []


def test_fixups_scalars_read_every_unit_alike():
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(4, kernel_initializer="ones", name="hidden")(inputs)
    scaled = kinit.Scale(name="scale")(kinit.Bias(name="bias")(hidden))
    outputs = keras.layers.Dense(2, kernel_initializer="ones", name="head")(keras.layers.ReLU()(scaled))
    assert symmetric_layers(diagnose(keras.Model(inputs, outputs), X).findings) == ["hidden"]
