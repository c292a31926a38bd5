"""Layer discovery and activation capture across kinds of models."""

import logging

import keras
import numpy as np
import pytest

from kinit.model_map import map_model
from kinit.callbacks import InitDiagnostics, diagnose
from kinit.callbacks.layers import discover
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
    assert [r["path"] for r in rows] == ["block_b/dense", "block_b/proj", "block_a/dense", "block_a/proj"]


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
def test_a_subclassed_model_is_traced_so_every_layer_is_logged_and_nothing_is_guessed(tmp_path, caplog):
    model = TwoTowers()
    model.compile("sgd", "mse")
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X, Y))])
    histograms = read_events(tmp_path).tags("histograms")
    for path in ("proj", "proj_2", "head"):
        assert {f"weights/{path}/kernel", f"gradients/{path}/kernel", f"activations/{path}/output"} <= histograms
    assert not any("spare" in tag for tag in histograms)  # never built, never called
    # Its call is traced (the tanh and the product between the layers are seen): nothing to say.
    assert not [r for r in caplog.records if "not traced" in r.getMessage() or "did not run" in r.getMessage()]


class Untraceable(keras.Model):
    """A call that decides on a tensor's value: it cannot run on symbolic inputs."""

    def __init__(self):
        super().__init__(name="untraceable")
        self.first = keras.layers.Dense(4, name="first")
        self.second = keras.layers.Dense(1, name="second")

    def call(self, x):
        h = self.first(x)
        if float(keras.ops.convert_to_numpy(keras.ops.max(h))) > 1e9:
            h = h * 0.0
        return self.second(h)


@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called")
def test_a_model_that_cannot_be_traced_is_logged_in_run_order_and_says_so_once(tmp_path, caplog):
    model = Untraceable()
    model(X)
    model.compile("sgd", "mse", run_eagerly=True)
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X, Y))])
    histograms = read_events(tmp_path).tags("histograms")
    assert {"activations/first/output", "activations/second/output", "gradients/first/kernel"} <= histograms
    notes = [r.getMessage() for r in caplog.records if "could not be called on symbolic inputs" in r.getMessage()]
    assert len(notes) == 1 and "'untraceable'" in notes[0]


def test_capture_leaves_the_layers_as_they_were():
    model = keras.Sequential([keras.Input((8,)), block("block_a"), keras.layers.Dense(2, name="head")])
    before = model.predict(X, verbose=0)
    diagnose(model, X)
    assert all("call" not in entry.layer.__dict__ for entry in discover(map_model(model)))
    np.testing.assert_array_equal(model.predict(X, verbose=0), before)


def test_sublayers_of_composite_layers_are_entries_and_wrapped_variables_are_named_below():
    inputs = keras.Input((5, 8))
    attention = keras.layers.MultiHeadAttention(2, 4, name="attention")
    model = keras.Model(inputs, attention(inputs, inputs))
    entries = discover(map_model(model))
    # MultiHeadAttention is traced through: one entry per projection, in the order they ran.
    assert [e.path for e in entries] == ["attention/query", "attention/key", "attention/value",
                                         "attention/attention_output"]
    assert [name for name, _ in entries[0].weights] == ["kernel", "bias"]
    sequence = keras.Input((3, 8))
    model = keras.Model(sequence, keras.layers.Bidirectional(keras.layers.LSTM(2), name="bidi")(sequence))
    (entry,) = discover(map_model(model))  # a wrapper's inner layers run inside it: one entry
    assert [name for name, _ in entry.weights][:3] == ["forward_lstm/lstm_cell/kernel",
                                                       "forward_lstm/lstm_cell/recurrent_kernel",
                                                       "forward_lstm/lstm_cell/bias"]


def test_layer_filter_is_a_regex_on_paths():
    model = keras.Sequential([keras.Input((8,)), block("block_a"), keras.layers.Dense(2, name="head")])
    assert [e.path for e in discover(map_model(model), layer_filter=r"block_a/")] == ["block_a/dense", "block_a/proj"]


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
    paths = [e.path for e in discover(map_model(model)) if e.layer is not model]
    assert paths == ["proj", "proj_3", "proj_2"]
    assert [e.layer for e in discover(map_model(model))][:3] == [model.first, model.second, model.third]


def test_variable_suffixes_never_collide_with_a_sibling_variable_name():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, Scales(name="scales")(inputs))
    (entry,) = discover(map_model(model))
    assert [name for name, _ in entry.weights] == ["w", "w_3", "w_2"]


def test_tensors_of_one_call_are_told_apart_from_calls():
    inputs = keras.Input((3, 8))
    sequence, state_h, state_c = keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                                   name="lstm")(inputs)
    shared = keras.layers.Dense(2, name="shared")
    model = keras.Model(inputs, [shared(sequence), shared(state_h), state_c])
    names = [(r["path"], r["name"]) for r in diagnose(model, X[:, None, :].repeat(3, axis=1)).rows
             if r["kind"] == "activation"]
    assert names == [("lstm", "output/0"), ("lstm", "output/1"), ("lstm", "output/2"),
                     ("shared", "output"), ("shared", "output_1")]
