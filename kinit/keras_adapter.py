"""Every private Keras attribute kinit reads, in one place.

Keras 3 has no public API for a layer's direct sublayers, for the graph
bookkeeping that symbolic calls leave behind, or for a hook on symbolic
calls; kinit needs all three to map a model (`kinit.model_map`). Each access
lives here, is covered by a test named after it (``tests/test_keras_adapter.py``),
and fails with `KerasInternalsError` naming the Keras version if a release
renames it, instead of an `AttributeError` deep inside kinit.

Tested with Keras 3.15 (`TESTED_KERAS`); ``pyproject.toml`` pins that range.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional

import keras

#: The Keras releases kinit's use of private attributes is tested with.
TESTED_KERAS = ">=3.15,<3.16"


class KerasInternalsError(RuntimeError):
    """A private Keras attribute kinit relies on is missing in this Keras release."""


def _missing(what: str, error: Exception) -> KerasInternalsError:
    return KerasInternalsError(
        f"kinit needs {what}, which Keras {keras.__version__} does not provide ({error}); "
        f"kinit is tested with keras{TESTED_KERAS}. Install a Keras release in that range."
    )


def sublayers(layer) -> list:
    """The direct sublayers of `layer` in the order they were assigned
    (``Layer._flatten_layers``), without input layers."""
    try:
        found = layer._flatten_layers(include_self=False, recursive=False)
    except AttributeError as error:
        raise _missing("Layer._flatten_layers", error) from None
    return [sub for sub in found if not isinstance(sub, keras.layers.InputLayer)]


def own_weights(layer) -> list:
    """The weights that `layer` creates itself (not those of its sublayers)."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    inner = {id(w) for sub in sublayers(layer) for w in sub.weights}
    return [w for w in layer.weights if id(w) not in inner]


def sequential_graph(model) -> Optional[keras.Model]:
    """The Functional model a built Sequential runs (``Sequential._functional``),
    or None while it has none (no input shape yet)."""
    try:
        return model._functional
    except AttributeError as error:
        raise _missing("Sequential._functional", error) from None


def graph_inputs(model):
    """The structure of symbolic inputs a Functional model (or a built
    Sequential) was made on (``Functional`` is not exported), else None."""
    if isinstance(model, keras.Sequential):
        graph = sequential_graph(model)
        return None if graph is None else graph.input
    try:
        from keras.src.models.functional import Functional
    except ImportError as error:
        raise _missing("keras.src.models.functional.Functional", error) from None
    return model.input if isinstance(model, Functional) else None


def building_layer():
    """The layer whose ``build`` is running, or None.

    Keras opens a name scope with ``caller=layer`` around every layer's
    build (``Layer._open_name_scope``, kept in the global state's
    ``name_scope_stack``); the innermost one is the layer creating its
    weights now.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError as error:
        raise _missing("keras.src.backend.common.global_state", error) from None
    stack = global_state.get_global_attribute("name_scope_stack") or []
    for scope in reversed(stack):
        caller = getattr(scope, "caller", None)
        if isinstance(caller, keras.layers.Layer):
            return caller
    return None


def compiled_loss(model):
    """The loss object `compile` made (``Model._compile_loss``), or None."""
    return getattr(model, "_compile_loss", None)


@contextlib.contextmanager
def symbolic_call_hook(on_layer: Callable, on_operation: Callable) -> Iterator[None]:
    """Route every symbolic call through the given functions while open.

    Keras performs a call on symbolic tensors (`keras.KerasTensor`) through
    ``Layer.symbolic_call`` for layers and ``Operation.symbolic_call`` for
    ops such as ``x + y`` or ``keras.ops.relu(x)``; both are replaced on
    their classes by ``on_layer(original, layer, *args, **kwargs)`` and
    ``on_operation(original, op, *args, **kwargs)``, where `original` is the
    method Keras would have run. Restored on leaving, also after an error.
    """
    try:
        from keras.src.layers.layer import Layer
        from keras.src.ops.operation import Operation

        originals = (Layer.symbolic_call, Operation.symbolic_call)
    except (ImportError, AttributeError) as error:
        raise _missing("Layer.symbolic_call and Operation.symbolic_call", error) from None
    layer_call, operation_call = originals

    def layer_hook(self, *args, **kwargs):
        return on_layer(layer_call, self, *args, **kwargs)

    def operation_hook(self, *args, **kwargs):
        return on_operation(operation_call, self, *args, **kwargs)

    Layer.symbolic_call, Operation.symbolic_call = layer_hook, operation_hook
    try:
        yield
    finally:
        Layer.symbolic_call, Operation.symbolic_call = originals


@contextlib.contextmanager
def restoring_graph_records(layers: List) -> Iterator[None]:
    """Remove, on leaving, the graph records (``_inbound_nodes`` and
    ``_outbound_nodes``) that symbolic calls add to `layers` while open, so
    that tracing a model leaves it exactly as it was."""
    try:
        saved = [(layer, len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers]
    except AttributeError as error:
        raise _missing("Operation._inbound_nodes and Operation._outbound_nodes", error) from None
    try:
        yield
    finally:
        for layer, inbound, outbound in saved:
            del layer._inbound_nodes[inbound:]
            del layer._outbound_nodes[outbound:]


@contextlib.contextmanager
def replaced_call(layer, call: Callable) -> Iterator[None]:
    """Make ``layer.call`` the function `call` while open.

    Set on the instance (``__dict__``), bypassing Keras's attribute
    tracking; `Layer.__call__` looks ``call`` up on the instance, so every
    kind of model that calls the layer runs `call` instead.
    """
    layer.__dict__["call"] = call
    try:
        yield
    finally:
        layer.__dict__.pop("call", None)
