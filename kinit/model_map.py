"""The map of a model: its layers, and the calls and ops between them as it runs.

Every model-level part of kinit asks which layer feeds which and what acts
on a kernel's output: the auto policy, the residual recipes, LSUV's order,
the diagnostics. `map_model` answers once, from a real call of the model:

1. **The layers.** Every layer of the model gets a `LayerRecord` with a
   unique path (``block/conv2d``; a name repeated under one parent gets
   ``_2``, ``_3``, …), found by walking each layer's sublayers. Layers
   that hold sublayers (subclassed models, Functional and Sequential models,
   custom layers, `MultiHeadAttention`) are *composite*: their own call is
   traced through, so their sublayers and the ops between them appear in
   the map. Wrappers and recurrent layers (`TimeDistributed`,
   `Bidirectional`, `RNN`) are not: their sublayers run *inside* them.
2. **The calls, symbolically.** The model is called on symbolic inputs
   (`keras.KerasTensor`, shaped like its inputs, or like `x` when given)
   with Keras's symbolic calls routed through kinit (see
   `kinit.keras_adapter.symbolic_call_hook`): every layer call and every op
   on symbolic tensors (``x + y``, ``keras.ops.relu(x)``, the attention op
   inside `MultiHeadAttention`) becomes a `Call`, linked to the calls that
   produced its inputs, in the order they ran. Residual merges are visible
   as such (an ``Add`` layer or an ``add`` op with two producers). A
   composite layer whose call cannot run on symbolic tensors (backend-only
   code, Python decisions on tensor values) is one opaque call, and every
   layer inside it has wiring "unknown", with the error as the reason.
3. **Otherwise, eagerly.** If the model as a whole cannot be called
   symbolically, it is run once on two examples (of `x`, or random values
   of the shape it was built with) with each layer's call recorded: the run
   order and which layer's output went straight into which layer are then
   known, the ops between them are not (wiring "order").

Nothing is guessed: where the map does not know, `LayerRecord.wiring` says
so and `LayerRecord.why_unknown` says why. Tracing leaves the model exactly
as it was (the graph records of symbolic calls are removed afterwards).
"""

from __future__ import annotations

import inspect
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import keras
import numpy as np
from keras import tree

from kinit import keras_adapter
from kinit.layer_kinds import RUNS_SUBLAYERS_INSIDE

#: `LayerRecord.wiring`: every input and consumer of its calls is known.
TRACED = "traced"
#: Run order and direct layer-to-layer links are known; the ops between are not.
ORDER = "order"
#: Not known (never called in the trace, or inside an untraceable layer).
UNKNOWN = "unknown"
#: `LayerRecord.why_unknown` of a layer the trace did not call.
NOT_CALLED = "it was not called when the model was traced"


@dataclass(eq=False)
class Call:
    """One call of a layer or op, or one model input, in the order they ran.

    Attributes:
        index: position in `ModelMap.calls` (run order).
        path: the layer's path; for an op, its name under the enclosing
            layer (``block/add``); for an input, the input's name.
        operation: the layer or op object.
        kind: ``"input"``, ``"layer"`` or ``"op"``.
        record: the layer's `LayerRecord` (None for ops and inputs).
        parent: the record of the composite layer the call ran in.
        inputs: the calls whose outputs this call read.
        consumers: the calls that read this call's outputs.
        unknown_inputs: an input came from something the map did not see.
        is_output: an output of this call is an output of the model.
        variables: Keras variables passed directly to an op (a custom
            layer's own weights used as ``keras.ops.matmul(x, self.w)``).
        opaque: a composite layer whose inside could not be traced.
        arguments: the calls whose outputs it read, by the name of the
            parameter of ``call`` they were passed as (``{"query": …,
            "key": …, "value": …}`` for the attention op); empty where the
            arguments could not be matched to the signature.
        constants: the Python numbers it was passed, by parameter name
            (``x * 2.0`` is a ``multiply`` op with ``{"x2": 2.0}``).
    """

    index: int
    path: str
    operation: Any
    kind: str
    record: Optional["LayerRecord"] = None
    parent: Optional["LayerRecord"] = None
    inputs: List["Call"] = field(default_factory=list)
    consumers: List["Call"] = field(default_factory=list)
    unknown_inputs: bool = False
    is_output: bool = False
    variables: list = field(default_factory=list)
    opaque: bool = False
    arguments: Dict[str, List["Call"]] = field(default_factory=dict)
    constants: Dict[str, float] = field(default_factory=dict)

    def argument(self, name: str) -> List["Call"]:
        """The calls whose outputs were passed as the parameter `name`."""
        return self.arguments.get(name, [])

    @property
    def layer_class(self) -> str:
        return type(self.operation).__name__

    @property
    def label(self) -> str:
        """How reasons name the call: ``'block/add' (add op)`` or ``'conv' (Conv2D)``."""
        if self.kind == "op":
            return f"{self.path!r} (op)"
        return f"{self.path!r} ({self.layer_class})"

    def __repr__(self) -> str:
        return f"Call({self.index}, {self.label})"


@dataclass(eq=False)
class LayerRecord:
    """One layer of the model under its unique path.

    Attributes:
        path: ``/``-joined unique names below the model (the model's own
            record is named by the model).
        layer: the layer.
        parent: the record of the layer that holds it (None for the model).
        children: the records of its direct sublayers.
        composite: its call was traced through (its sublayers and the ops
            between them are in the map).
        inside: the wrapper or recurrent layer it runs inside, if any.
        calls: its calls in run order (a shared layer has several); empty
            for composite layers, which are transparent.
        wiring: `TRACED`, `ORDER` or `UNKNOWN` (see the module docstring).
        why_unknown: why the wiring is not `TRACED`.
    """

    path: str
    layer: Any
    parent: Optional["LayerRecord"] = None
    children: List["LayerRecord"] = field(default_factory=list)
    composite: bool = False
    inside: Optional["LayerRecord"] = None
    calls: List[Call] = field(default_factory=list)
    wiring: str = UNKNOWN
    why_unknown: str = "the model could not be traced"

    @property
    def layer_class(self) -> str:
        return type(self.layer).__name__

    @property
    def own_weights(self) -> list:
        return keras_adapter.own_weights(self.layer)

    def lineage(self):
        """This record and the records holding it, innermost first."""
        record = self
        while record is not None:
            yield record
            record = record.parent

    def __repr__(self) -> str:
        return f"LayerRecord({self.path!r}, {self.layer_class}, {self.wiring})"


class ModelMap:
    """The layers and calls of one model (see the module docstring).

    Attributes:
        model: the model mapped.
        root: the model's own record.
        records: every layer's record, in the order they first ran
            (layers that never ran last, in the order they were found).
        calls: every layer call, op call and input, in run order.
        how: ``"symbolic"``, ``"eager"`` or ``"none"`` (nothing could run).
        notes: what could not be traced, and why.
    """

    def __init__(self, model, root: LayerRecord, records: List[LayerRecord], calls: List[Call], how: str,
                 notes: List[str]):
        self.model = model
        self.root = root
        self.calls = calls
        self.how = how
        self.notes = notes
        order = {id(record): index for index, record in enumerate(records)}
        first = {}
        for call in calls:
            if call.record is not None:
                first.setdefault(id(call.record), call.index)
        self.records = sorted(records, key=lambda r: (first.get(id(r), len(calls)), order[id(r)]))
        self._by_layer: Dict[int, LayerRecord] = {}
        for record in self.records:
            self._by_layer.setdefault(id(record.layer), record)

    def record(self, layer) -> LayerRecord:
        """The record of `layer` (a layer of the model)."""
        try:
            return self._by_layer[id(layer)]
        except KeyError:
            raise ValueError(f"{getattr(layer, 'name', layer)!r} is not a layer of model {self.model.name!r}.") from None

    def calls_of(self, record: LayerRecord) -> List[Call]:
        """The calls that run `record`'s layer: its own, or those of the
        wrapper it runs inside."""
        while not record.calls and record.inside is not None:
            record = record.inside
        return record.calls

    def ran(self, record: LayerRecord) -> Optional[bool]:
        """Whether `record`'s layer ran when the model was traced: None where
        the map cannot know (inside an untraced layer, or no trace at all)."""
        if self.calls_of(record):
            return True
        return False if record.why_unknown == NOT_CALLED else None

    def leaves(self) -> List[LayerRecord]:
        """The records that are not composite, in run order."""
        return [record for record in self.records if not record.composite]

    def users_of(self, variable) -> List[Call]:
        """The op calls that read `variable` directly."""
        return [call for call in self.calls if any(v is variable for v in call.variables)]

    def __repr__(self) -> str:
        return f"ModelMap({self.model.name!r}, {len(self.records)} layers, {len(self.calls)} calls, {self.how})"


def map_model(model, x=None) -> ModelMap:
    """Map the built `model` (see the module docstring).

    Example:

    >>> model_map = map_model(model)
    >>> [(call.path, [c.path for c in call.consumers]) for call in model_map.calls]

    Args:
        model: a built Keras model.
        x: optional inputs (or one batch of them): their shapes and dtypes
            are used for the symbolic inputs of a model without a graph, and
            two of their examples for an eager run if the symbolic one fails.

    Raises:
        ValueError: if `model` is not a built Keras model.
    """
    require_built(model, "map_model")
    builder = _Builder(model)
    inputs = _symbolic_inputs(model, x)
    if inputs is not None:
        try:
            builder.trace_symbolic(inputs)
        except Exception as error:  # a model Keras cannot call symbolically
            builder.reset(f"model {model.name!r} could not be called on symbolic inputs "
                          f"({type(error).__name__}: {_first_line(error)})")
    if builder.how == "none":
        batch = _eager_batch(model, x)
        if batch is not None:
            try:
                builder.trace_eager(batch)
            except Exception as error:
                builder.reset(f"model {model.name!r} could not be run on two examples "
                              f"({type(error).__name__}: {_first_line(error)})")
        elif not builder.notes:
            builder.notes.append(f"model {model.name!r}: no input shape is known (pass `x`), so its "
                                 "wiring is unknown")
    return builder.finish()


def require_built(model, owner: str) -> None:
    """Raise `ValueError` unless `model` is a built Keras layer or model."""
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"{owner}: expected a Keras model; received {type(model).__name__}.")
    unbuilt_sequential = isinstance(model, keras.Sequential) and keras_adapter.sequential_graph(model) is None
    if not model.built or unbuilt_sequential:
        raise ValueError(
            f"{owner}: model {model.name!r} is not built. Build it first, e.g. by "
            "giving it an `Input`, calling `model.build(input_shape)` or calling it on data."
        )


def op_name(operation) -> str:
    """An op's name in snake case: ``Add`` → ``add``, ``DotProductAttention`` →
    ``dot_product_attention``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(operation).__name__).lower()


def unique_names(names: List[str]) -> List[str]:
    """`names` with each repeat given the first suffix ``_2``, ``_3``, … that no
    other name in `names` has (used before or still to come)."""
    taken, seen, unique = set(names), set(), []
    for name in names:
        if name in seen:
            suffix = 2
            while f"{name}_{suffix}" in taken:
                suffix += 1
            name = f"{name}_{suffix}"
            taken.add(name)
        seen.add(name)
        unique.append(name)
    return unique


class _Builder:
    def __init__(self, model):
        self.model = model
        self.records: List[LayerRecord] = []
        self.by_layer: Dict[int, LayerRecord] = {}
        self.root = self._walk(model, parent=None, path=model.name, inside=None)
        self.calls: List[Call] = []
        self.producers: Dict[int, Call] = {}
        self.keep: list = []  # tensors whose ids key `producers` stay alive
        self.stack: List[LayerRecord] = [self.root]
        self.op_names: Dict[int, set] = {}
        self.leaf_depth = 0
        self.opaque: Dict[int, str] = {}
        self.how = "none"
        self.notes: List[str] = []

    # The layers ------------------------------------------------------------
    def _walk(self, layer, parent, path, inside) -> LayerRecord:
        record = LayerRecord(path=path, layer=layer, parent=parent, inside=inside)
        self.records.append(record)
        self.by_layer[id(layer)] = record
        held = keras_adapter.sublayers(layer)
        children = [sub for sub in held if id(sub) not in self.by_layer]
        runs_inside = isinstance(layer, RUNS_SUBLAYERS_INSIDE) or inside is not None
        record.composite = bool(held) and not runs_inside
        prefix = "" if parent is None else f"{path}/"
        for sub, name in zip(children, unique_names([sub.name for sub in children])):
            if id(sub) not in self.by_layer:  # a layer held twice is mapped where first found
                record.children.append(self._walk(sub, record, prefix + name, record if runs_inside else None))
        return record

    # Symbolic trace --------------------------------------------------------
    def trace_symbolic(self, inputs) -> None:
        for index, tensor in enumerate(tree.flatten(inputs)):
            name = getattr(tensor, "name", None) or f"input_{index}"
            self._register(Call(len(self.calls), name, tensor, "input", parent=self.root), [tensor])
        layers = [record.layer for record in self.records]
        with keras_adapter.restoring_graph_records(layers), keras_adapter.symbolic_call_hook(
            self._on_layer, self._on_operation
        ):
            outputs = self.model(inputs, training=False)
        self._mark_outputs(outputs)
        self.how = "symbolic"

    def _on_layer(self, original, layer, *args, **kwargs):
        record = self.by_layer.get(id(layer))
        if self.leaf_depth or record is None or record.inside is not None:
            return original(layer, *args, **kwargs)  # inside a leaf's own computation
        if record.composite and id(layer) not in self.opaque:
            mark = len(self.calls)
            self.stack.append(record)
            try:
                return layer.call(*args, **kwargs)
            except Exception as error:
                if record is self.root:
                    raise
                self._rollback(mark)
                self.opaque[id(layer)] = f"{type(error).__name__}: {_first_line(error)}"
            finally:
                self.stack.pop()
        self.leaf_depth += 1
        try:
            outputs = original(layer, *args, **kwargs)
        finally:
            self.leaf_depth -= 1
        call = Call(len(self.calls), record.path, layer, "layer", record=record, parent=self.stack[-1],
                    opaque=record.composite)
        self._link(call, (args, kwargs))
        self._bind(call, layer.call, args, kwargs)
        record.calls.append(call)
        self._register(call, tree.flatten(outputs))
        return outputs

    def _on_operation(self, original, operation, *args, **kwargs):
        outputs = original(operation, *args, **kwargs)
        if self.leaf_depth:
            return outputs
        parent = self.stack[-1]
        call = Call(len(self.calls), self._op_path(parent, operation), operation, "op", parent=parent)
        self._link(call, (args, kwargs))
        self._bind(call, operation.call, args, kwargs)
        call.variables = [v for v in tree.flatten((args, kwargs)) if isinstance(v, keras.Variable)]
        self._register(call, tree.flatten(outputs))
        return outputs

    def _op_path(self, parent: LayerRecord, operation) -> str:
        taken = self.op_names.setdefault(id(parent), set())
        base = op_name(operation)
        name, suffix = base, 1
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        return name if parent is self.root else f"{parent.path}/{name}"

    def _rollback(self, mark: int) -> None:
        for call in self.calls[mark:]:
            if call.record is not None:
                call.record.calls.remove(call)
            for producer in call.inputs:
                producer.consumers.remove(call)
        del self.calls[mark:]

    # Eager trace -------------------------------------------------------------
    def trace_eager(self, batch) -> None:
        for index, tensor in enumerate(tree.flatten(batch)):
            self._register(Call(len(self.calls), f"input_{index}", tensor, "input", parent=self.root), [tensor])
        # Tensors, so that the model's first layers receive these very objects.
        batch = tree.map_structure(keras.ops.convert_to_tensor, batch)
        leaves = [record for record in self.records if not record.composite and record.inside is None]
        with _recording_calls(leaves, self._on_eager_call):
            outputs = self.model(batch, training=False)
        self._mark_outputs(outputs)
        self.how = "eager"

    def _on_eager_call(self, record: LayerRecord, args, kwargs, outputs) -> None:
        call = Call(len(self.calls), record.path, record.layer, "layer", record=record, parent=record.parent)
        self._link(call, (args, kwargs))
        record.calls.append(call)
        self._register(call, tree.flatten(outputs))

    # Shared ------------------------------------------------------------------
    def _link(self, call: Call, arguments) -> None:
        for tensor in tree.flatten(arguments):
            if not _is_tensor(tensor):
                continue
            producer = self.producers.get(id(tensor))
            if producer is None:
                call.unknown_inputs = True
            elif producer not in call.inputs:
                call.inputs.append(producer)
                producer.consumers.append(call)

    def _bind(self, call: Call, function, args, kwargs) -> None:
        """Fill `call.arguments` and `call.constants` by the parameter names of `function`."""
        try:
            bound = inspect.signature(function).bind(*args, **kwargs)
        except (TypeError, ValueError):  # no signature, or arguments it does not take
            return
        for name, value in bound.arguments.items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                call.constants[name] = float(value)
                continue
            producers = []
            for tensor in tree.flatten(value):
                producer = self.producers.get(id(tensor)) if _is_tensor(tensor) else None
                if producer is not None and producer not in producers:
                    producers.append(producer)
            if producers:
                call.arguments[name] = producers

    def _register(self, call: Call, outputs: list) -> None:
        self.calls.append(call)
        for tensor in outputs:
            if _is_tensor(tensor):
                self.producers[id(tensor)] = call
                self.keep.append(tensor)

    def _mark_outputs(self, outputs) -> None:
        for tensor in tree.flatten(outputs):
            producer = self.producers.get(id(tensor)) if _is_tensor(tensor) else None
            if producer is not None:
                producer.is_output = True

    def reset(self, note: str) -> None:
        for record in self.records:
            record.calls.clear()
        self.calls, self.producers, self.keep, self.op_names = [], {}, [], {}
        self.opaque.clear()
        self.how = "none"
        self.notes.append(note)

    def finish(self) -> ModelMap:
        opaque_notes = {}
        for record in self.records:
            record.wiring, record.why_unknown = self._wiring(record, opaque_notes)
        self.notes += [f"the layers inside {path!r} are not traced: {why}" for path, why in opaque_notes.items()]
        return ModelMap(self.model, self.root, self.records, self.calls, self.how, self.notes)

    def _wiring(self, record: LayerRecord, opaque_notes: dict):
        if self.how == "none":
            return UNKNOWN, self.notes[-1] if self.notes else "the model could not be traced"
        for holder in record.lineage():
            if id(holder.layer) in self.opaque and holder is not record:
                why = f"its call runs inside {holder.path!r} ({holder.layer_class}), which could not be traced " \
                      f"symbolically ({self.opaque[id(holder.layer)]})"
                opaque_notes[holder.path] = self.opaque[id(holder.layer)]
                return UNKNOWN, why
        if record.composite and id(record.layer) not in self.opaque:
            return (TRACED, "") if self.how == "symbolic" else (ORDER, _EAGER_REASON)
        holder = record
        while not holder.calls and holder.inside is not None:
            holder = holder.inside
        if not holder.calls:
            return UNKNOWN, NOT_CALLED
        if self.how == "eager":
            return ORDER, _EAGER_REASON
        return TRACED, ""


_EAGER_REASON = ("the model was run eagerly to map it (it cannot be called on symbolic inputs), "
                 "so the operations between its layers are not seen")


class _recording_calls:
    """Replace each record's ``call`` by one that reports its arguments and
    outputs, for the duration of one eager run."""

    def __init__(self, records: List[LayerRecord], report):
        self.records, self.report, self.stack = records, report, None

    def __enter__(self):
        import contextlib

        self.stack = contextlib.ExitStack()
        for record in self.records:
            self.stack.enter_context(keras_adapter.replaced_call(record.layer, self._recording(record)))
        return self

    def _recording(self, record: LayerRecord):
        original = record.layer.call

        def call(*args, **kwargs):
            outputs = original(*args, **kwargs)
            self.report(record, args, kwargs, outputs)
            return outputs

        return call

    def __exit__(self, *exc):
        self.stack.close()
        return False


def _is_tensor(value) -> bool:
    return isinstance(value, keras.KerasTensor) or keras.ops.is_tensor(value)


def _first_line(error: Exception) -> str:
    """The first line of `error`'s message that says what went wrong (Keras
    wraps errors in calls as "Exception encountered when calling …")."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith("Exception encountered")]
    return useful[0] if useful else (lines[0] if lines else "")


def _symbolic_inputs(model, x):
    """Symbolic inputs shaped like the model's own inputs, or like `x`, or like
    the shape the model was built with; None when none is known."""
    graph = keras_adapter.graph_inputs(model)
    if graph is not None:
        return tree.map_structure(
            lambda ref: keras.KerasTensor(ref.shape, dtype=ref.dtype, sparse=ref.sparse, name=ref.name), graph
        )
    if x is not None:
        try:
            return tree.map_structure(
                lambda a: keras.KerasTensor((None,) + tuple(np.shape(a))[1:], dtype=_dtype_of(a)), x
            )
        except (TypeError, ValueError):
            return None
    shape = _built_shape(model)
    if shape is None:
        return None
    return tree.map_shape_structure(
        lambda dims: keras.KerasTensor((None,) + tuple(dims)[1:], dtype=keras.config.floatx()), shape
    )


def _built_shape(model):
    config = model.get_build_config()
    return config.get("input_shape") if isinstance(config, dict) else None


def _eager_batch(model, x):
    """Two examples of `x`, or random values of the shape the model was built with."""
    if x is not None:
        return tree.map_structure(lambda a: a[:2], x)
    shape = _built_shape(model)
    if shape is None:
        return None
    rng = np.random.default_rng(0)
    return tree.map_shape_structure(
        lambda dims: rng.standard_normal((2,) + tuple(dims)[1:]).astype(keras.config.floatx()), shape
    )


def _dtype_of(array) -> str:
    dtype = getattr(array, "dtype", None)
    return keras.backend.standardize_dtype(dtype) if dtype is not None else keras.config.floatx()
