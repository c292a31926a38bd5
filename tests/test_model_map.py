"""kinit.model_map: the layers, calls and ops of a model as it runs, and the
reasons `initialize` gives from it (written against keras only: it runs on
every backend, see test_backends.py)."""

import warnings

import keras
import numpy as np
import pytest
from keras import layers

import kinit
from kinit.model_map import ORDER, TRACED, UNKNOWN, map_model


def rows_by_weight(report):
    return {(row.path, row.weight): row for row in report}


class ResBlock(layers.Layer):
    """The common residual block: sublayers assigned in one order, a shared ReLU,
    and the skip connection written as ``+``."""

    def __init__(self, c, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(c, 3, padding="same", use_bias=False, name="conv1")
        self.bn1 = layers.BatchNormalization(name="bn1")
        self.conv2 = layers.Conv2D(c, 3, padding="same", use_bias=False, name="conv2")
        self.bn2 = layers.BatchNormalization(name="bn2")
        self.relu = layers.ReLU(name="relu")

    def call(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + x)


def resblock_model():
    inputs = keras.Input((8, 8, 4))
    h = ResBlock(4, name="res")(inputs)
    return keras.Model(inputs, layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(h)))


def test_a_residual_block_gets_he_for_both_convolutions_with_true_reasons():
    model = resblock_model()
    rows = rows_by_weight(kinit.initialize(model, seed=0, zero_residual_gamma=True))
    conv1, conv2 = rows[("res/conv1", "kernel")], rows[("res/conv2", "kernel")]
    assert conv1.scheme.startswith("He normal")
    assert "after 'res/bn1' then 'res/relu'" in conv1.reason
    assert conv2.scheme.startswith("He normal")
    assert "after 'res/bn2' then 'res/add' then 'res/relu'" in conv2.reason
    # The residual branch's last normalization, found through the `+` of the call.
    assert rows[("res/bn2", "gamma")].scheme == "zeros"
    assert rows[("res/bn1", "gamma")].scheme == "ones"


class Projected(layers.Layer):
    """``act(body(x)) + proj(x)``, with the projection assigned last."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.body = layers.Dense(8, name="body")
        self.act = layers.Activation("relu", name="act")
        self.proj = layers.Dense(8, name="proj")

    def call(self, x):
        return self.act(self.body(x)) + self.proj(x)


def test_body_and_projection_of_a_sum_each_get_what_follows_them():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Projected(name="block")(inputs))
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    body, proj = rows[("block/body", "kernel")], rows[("block/proj", "kernel")]
    assert body.scheme.startswith("He normal") and "next layer 'block/act'" in body.reason
    # The sum is the model's output: nothing nonlinear follows the projection.
    assert proj.scheme.startswith("Glorot uniform") and "model output, after 'block/add'" in proj.reason


def test_multi_head_attention_projections_have_true_reasons():
    inputs = keras.Input((5, 8))
    attention = layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    model = keras.Model(inputs, layers.ReLU(name="relu")(attention))
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    for name in ("query", "key", "value"):
        reason = rows[(f"mha/{name}", "kernel")].reason
        assert rows[(f"mha/{name}", "kernel")].scheme.startswith("Glorot uniform")
        assert "Softmax" not in reason and "next layer 'mha/key'" not in reason
        assert "'mha/" in reason and "is no activation" in reason, reason
    output = rows[("mha/attention_output", "kernel")]
    assert output.scheme.startswith("He normal") and "next layer 'relu'" in output.reason


class Reordered(keras.Model):
    """Sublayers assigned in another order than they run, an op between them."""

    def __init__(self):
        super().__init__(name="reordered")
        self.out = layers.Dense(3, name="out")
        self.squash = layers.Activation("tanh", name="squash")
        self.inp = layers.Dense(6, name="inp")

    def call(self, x):
        return self.out(keras.ops.relu(self.squash(self.inp(x))))


def test_a_subclassed_model_is_mapped_in_run_order_with_the_ops_between_layers():
    model = Reordered()
    model(np.zeros((2, 4), "float32"))
    model_map = map_model(model)
    assert model_map.how == "symbolic"
    paths = [call.path for call in model_map.calls if call.kind != "input"]
    assert paths == ["inp", "squash", "relu", "out"]
    relu = model_map.calls[3]
    assert relu.kind == "op" and [c.path for c in relu.inputs] == ["squash"] and relu.consumers[0].path == "out"
    assert all(record.wiring == TRACED for record in model_map.records)
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    assert "next layer 'squash'" in rows[("inp", "kernel")].reason
    assert "model output" in rows[("out", "kernel")].reason


def test_a_shared_layer_has_one_record_and_a_call_per_use():
    inputs = keras.Input((3,))
    shared = layers.Dense(3, name="shared")
    first = shared(inputs)
    second = shared(layers.ReLU(name="relu")(first))
    model = keras.Model(inputs, layers.Add(name="sum")([first, second]))
    model_map = map_model(model)
    record = model_map.record(shared)
    assert [call.index for call in record.calls] == [c.index for c in model_map.calls if c.operation is shared]
    assert len(record.calls) == 2
    consumers = [[c.path for c in call.consumers] for call in record.calls]
    assert consumers == [["relu", "sum"], ["sum"]]
    # Its two calls disagree (ReLU, and the model output): the linear rule, said as such.
    row = rows_by_weight(kinit.initialize(model, seed=0))[("shared", "kernel")]
    assert "different nonlinearities" in row.reason


def test_nested_models_are_flattened_under_their_paths():
    inner = keras.Sequential([layers.Dense(4, name="a"), layers.Dense(4, name="b")], name="inner")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layers.ReLU(name="relu")(inner(inputs)))
    model_map = map_model(model)
    assert [c.path for c in model_map.calls if c.kind == "layer"] == ["inner/a", "inner/b", "relu"]
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    assert rows[("inner/b", "kernel")].scheme.startswith("He normal")
    assert "next layer 'relu'" in rows[("inner/b", "kernel")].reason


class BackendOnly(layers.Layer):
    """A custom layer whose call cannot run on symbolic tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(4, name="inner")

    def call(self, x):
        h = self.inner(x)
        if float(keras.ops.convert_to_numpy(keras.ops.max(h))) > 1e9:  # a decision on a value
            h = h * 0.0
        return h

    def compute_output_shape(self, input_shape):  # what lets Keras use it in a Functional model
        return input_shape[:-1] + (4,)


@pytest.mark.filterwarnings("ignore:Layer 'opaque' looks like it has unbuilt state")  # Keras's, on building
def test_what_cannot_be_traced_is_wiring_unknown_never_a_guess():
    inputs = keras.Input((4,))
    h = layers.Dense(4, name="before")(inputs)
    model = keras.Model(inputs, layers.ReLU(name="relu")(BackendOnly(name="opaque")(h)))
    model_map = map_model(model)
    assert model_map.record(model.get_layer("opaque").inner).wiring == UNKNOWN
    assert any("'opaque'" in note for note in model_map.notes)
    report = kinit.initialize(model, seed=0)
    rows = rows_by_weight(report)
    inner = rows[("opaque/inner", "kernel")]
    assert inner.scheme.startswith("Glorot uniform") and "wiring unknown" in inner.reason
    assert "could not be traced" in inner.reason and "(the default)" in inner.reason
    before = rows[("before", "kernel")]
    assert "wiring unknown" in before.reason and "'opaque'" in before.reason
    assert report.notes == model_map.notes


class DecidesOnValues(keras.Model):
    def __init__(self):
        super().__init__(name="decides")
        self.second = layers.Dense(2, name="second")
        self.first = layers.Dense(4, name="first")

    def call(self, x):
        h = self.first(x)
        if float(keras.ops.convert_to_numpy(keras.ops.max(h))) > 1e9:
            h = h * 0.0
        return self.second(h)


def test_a_model_that_cannot_run_symbolically_is_mapped_by_an_eager_run():
    model = DecidesOnValues()
    x = np.ones((2, 3), "float32")
    model(x)
    if model.get_build_config() is None:
        # Called on data without a build() (TensorFlow, JAX): Keras kept no input shape.
        unknown = map_model(model)
        assert unknown.how == "none" and "pass `x`" in unknown.notes[0]
        assert all(record.wiring == UNKNOWN for record in unknown.records)
    model_map = map_model(model, x)
    assert model_map.how == "eager"
    assert [c.path for c in model_map.calls if c.kind == "layer"] == ["first", "second"]
    assert all(model_map.record(layer).wiring == ORDER for layer in (model.first, model.second))
    row = rows_by_weight(kinit.initialize(model, seed=0, x=x))[("first", "kernel")]
    assert "wiring unknown" in row.reason and "eagerly" in row.reason


def test_mapping_leaves_the_model_as_it_was_and_warns_nothing():
    model = resblock_model()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x))
    graph_records = [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in model._flatten_layers()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        map_model(model)
    assert [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in model._flatten_layers()] == graph_records
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), before)


def test_an_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="is not built"):
        map_model(keras.Sequential([layers.Dense(2)]))
