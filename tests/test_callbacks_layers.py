"""Layer discovery and activation capture across kinds of models."""

import logging

import keras
import numpy as np
import pytest

from callbacks import InitDiagnostics, diagnose
from callbacks.layers import discover
from tensorboard_events import read_events

RNG = np.random.default_rng(2)
X = RNG.normal(size=(16, 8)).astype("float32")
Y = RNG.normal(size=(16, 1)).astype("float32")


def block(name):
    return keras.Sequential([keras.layers.Dense(8, "relu", name="dense"),
                             keras.layers.Dense(8, name="proj")], name=name)


def test_nested_sequentials_in_a_functional_model_have_distinct_tags(tmp_path):
    first, second = block("block_a"), block("block_b")
    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(1, name="head")(first(second(first(inputs))))  # block_a runs twice
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    model.fit(X, Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X, Y))])
    histograms = read_events(tmp_path).tags("histograms")
    inner = [f"{b}/{layer}" for b in ("block_a", "block_b") for layer in ("dense", "proj")]
    expected = {f"{kind}s/{path}/{name}" for kind in ("weight", "gradient")
                for path in inner + ["head"] for name in ("kernel", "bias")}
    expected |= {f"activations/{path}/output" for path in inner + ["head"]}
    expected |= {"activations/block_a/dense/output_1", "activations/block_a/proj/output_1"}
    assert histograms == expected


def test_activations_are_listed_in_call_order():
    first, second = block("block_a"), block("block_b")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, first(second(inputs)))
    rows = [r for r in diagnose(model, X).rows if r["kind"] == "activation"]
    assert [r["layer"] for r in rows] == ["block_b/dense", "block_b/proj", "block_a/dense", "block_a/proj"]


class TwoTowers(keras.Model):
    """A subclassed model: same-named layers, an op between layers, an unused layer."""

    def __init__(self):
        super().__init__(name="towers")
        self.left = keras.layers.Dense(4, name="proj")
        self.right = keras.layers.Dense(4, name="proj")
        self.unused = keras.layers.Dense(3, name="spare")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, x):
        return self.head(keras.ops.tanh(self.left(x)) * self.right(x))


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called")
def test_subclassed_model_logs_what_it_can_and_says_once_what_it_skips(tmp_path, caplog):
    model = TwoTowers()
    model.compile("sgd", "mse")
    with caplog.at_level(logging.WARNING, logger="callbacks"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X, Y))])
    histograms = read_events(tmp_path).tags("histograms")
    for path in ("proj", "proj_2", "head"):
        assert {f"weights/{path}/kernel", f"gradients/{path}/kernel", f"activations/{path}/output"} <= histograms
    assert not any("spare" in tag for tag in histograms)  # never built, never called
    notes = [r.getMessage() for r in caplog.records if "defines its own call()" in r.getMessage()]
    assert len(notes) == 1 and "'towers'" in notes[0]
    skipped = [r.getMessage() for r in caplog.records if "did not run through" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].endswith(": spare.")


def test_capture_leaves_the_layers_as_they_were():
    model = keras.Sequential([keras.Input((8,)), block("block_a"), keras.layers.Dense(2, name="head")])
    before = model.predict(X, verbose=0)
    diagnose(model, X)
    assert all("call" not in entry.layer.__dict__ for entry in discover(model))
    np.testing.assert_array_equal(model.predict(X, verbose=0), before)


def test_variables_of_composite_layers_are_named_below_the_layer():
    inputs = keras.Input((5, 8))
    attention = keras.layers.MultiHeadAttention(2, 4, name="attention")
    model = keras.Model(inputs, attention(inputs, inputs))
    (entry,) = discover(model)
    assert entry.path == "attention"
    assert [name for name, _ in entry.weights][:4] == ["query/kernel", "query/bias", "key/kernel", "key/bias"]


def test_layer_filter_is_a_regex_on_paths():
    model = keras.Sequential([keras.Input((8,)), block("block_a"), keras.layers.Dense(2, name="head")])
    assert [e.path for e in discover(model, layer_filter=r"block_a/")] == ["block_a/dense", "block_a/proj"]


class ThreeProjections(keras.Model):
    """Sibling layers named proj, proj, proj_2: a naive suffix collides."""

    def __init__(self):
        super().__init__(name="three")
        self.first = keras.layers.Dense(4, name="proj")
        self.second = keras.layers.Dense(4, name="proj")
        self.third = keras.layers.Dense(4, name="proj_2")

    def call(self, x):
        return self.first(x) + self.second(x) + self.third(x)


class Scales(keras.layers.Layer):
    """Variables named w, w, w_2 in one layer."""

    def build(self, input_shape):
        self.scales = [self.add_weight(shape=(input_shape[-1],), name=name) for name in ("w", "w", "w_2")]

    def call(self, x):
        return x * self.scales[0] * self.scales[1] * self.scales[2]


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called")
def test_suffixes_never_collide_with_a_sibling_name():
    model = ThreeProjections()
    model(X)
    paths = [e.path for e in discover(model) if e.layer is not model]
    assert paths == ["proj", "proj_3", "proj_2"]
    assert [e.layer for e in discover(model)][:3] == [model.first, model.second, model.third]


def test_variable_suffixes_never_collide_with_a_sibling_variable_name():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, Scales(name="scales")(inputs))
    (entry,) = discover(model)
    assert [name for name, _ in entry.weights] == ["w", "w_3", "w_2"]


def test_tensors_of_one_call_are_told_apart_from_calls():
    inputs = keras.Input((3, 8))
    sequence, state_h, state_c = keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                                   name="lstm")(inputs)
    shared = keras.layers.Dense(2, name="shared")
    model = keras.Model(inputs, [shared(sequence), shared(state_h), state_c])
    names = [(r["layer"], r["name"]) for r in diagnose(model, X[:, None, :].repeat(3, axis=1)).rows
             if r["kind"] == "activation"]
    assert names == [("lstm", "output/0"), ("lstm", "output/1"), ("lstm", "output/2"),
                     ("shared", "output"), ("shared", "output_1")]
