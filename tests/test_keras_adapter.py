"""Every private Keras attribute kinit reads, each under a test named after it.

A Keras release that renames one fails here first, by name; kinit itself then
raises `KerasInternalsError` naming the Keras version (tested below), never
an `AttributeError` from deep inside.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from kinit import keras_adapter
from kinit.keras_adapter import KerasInternalsError

ROOT = Path(__file__).resolve().parents[1]

#: Reads of the private Keras names kinit relies on (and others it once used);
#: only kinit/keras_adapter.py may contain them.
PRIVATE = re.compile(r"\.(_flatten_layers|_functional|_inbound_nodes|_outbound_nodes|_compile_loss|symbolic_call"
                     r"|_keras_history|_nodes_by_depth|_run_through_graph)\b|keras\.src\b")


def small_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(keras.layers.Dense(4, name="hidden")(inputs)))


def test__flatten_layers():
    block = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.ReLU(name="b")])
    assert [layer.name for layer in keras_adapter.sublayers(block)] == ["a", "b"]
    attention = keras.layers.MultiHeadAttention(2, 4)
    attention(np.zeros((1, 2, 4), "float32"), np.zeros((1, 2, 4), "float32"))
    assert [layer.name for layer in keras_adapter.sublayers(attention)][:3] == ["query", "key", "value"]


def test_sequential__functional():
    assert keras_adapter.sequential_graph(keras.Sequential([keras.layers.Dense(2)])) is None
    built = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert isinstance(keras_adapter.sequential_graph(built), keras.Model)


def test_functional_class_gives_graph_inputs():
    model = small_model()
    assert keras_adapter.graph_inputs(model) is model.input

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert keras_adapter.graph_inputs(Subclassed()) is None


def test__compile_loss():
    model = small_model()
    assert keras_adapter.compiled_loss(model) is None
    model.compile("sgd", "mse")
    loss = keras_adapter.compiled_loss(model)
    assert loss is not None
    model.compile("sgd", "mae")
    assert keras_adapter.compiled_loss(model) is not loss


def test_layer_symbolic_call_and_operation_symbolic_call():
    model = small_model()
    seen = []

    def on_layer(original, layer, *args, **kwargs):
        seen.append(layer.name)
        return original(layer, *args, **kwargs)

    def on_operation(original, operation, *args, **kwargs):
        seen.append(type(operation).__name__)
        return original(operation, *args, **kwargs)

    inputs = keras.Input((3,))
    with keras_adapter.symbolic_call_hook(on_layer, on_operation):
        keras.ops.relu(model.get_layer("hidden")(inputs))
    assert seen == ["hidden", "Relu"]
    seen.clear()
    keras.ops.relu(model.get_layer("hidden")(inputs))  # restored on leaving
    assert seen == []


def test__inbound_nodes_and__outbound_nodes():
    model = small_model()
    layers = [model.get_layer("hidden"), model.get_layer("dense")]
    before = [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers]
    with keras_adapter.restoring_graph_records(layers):
        layers[1](layers[0](keras.Input((3,))))
        assert [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers] != before
    assert [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers] == before


def test_instance_call_is_what_layer_call_runs():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    x = np.ones((1, 3), "float32")
    with keras_adapter.replaced_call(layer, lambda inputs: inputs * 0 + 7):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), 7)
    assert "call" not in layer.__dict__
    assert keras.ops.convert_to_numpy(layer(x)).shape == (1, 2)


def test_a_missing_attribute_names_the_keras_version(monkeypatch):
    class Renamed(keras.layers.Layer):
        def __getattribute__(self, name):
            if name == "_flatten_layers":
                raise AttributeError(name)
            return super().__getattribute__(name)

    with pytest.raises(KerasInternalsError, match=re.escape(f"Keras {keras.__version__}") + ".*_flatten_layers"):
        keras_adapter.sublayers(Renamed())


def test_no_other_module_reads_private_keras_attributes():
    adapter = ROOT / "kinit" / "keras_adapter.py"
    offenders = []
    for path in sorted((ROOT / "kinit").rglob("*.py")) + sorted((ROOT / "callbacks").rglob("*.py")):
        if path == adapter:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_global_state_name_scope_stack_gives_the_building_layer():
    seen = []

    class Probe(keras.layers.Layer):
        def build(self, input_shape):
            seen.append(keras_adapter.building_layer())

        def call(self, x):
            return x

    layer = Probe(name="probe")
    layer(np.zeros((1, 2), "float32"))
    assert seen == [layer]
    assert keras_adapter.building_layer() is None
