"""Which layers a model has, under which unique path, and what they output.

`discover` walks a model the way Keras lists it (`model.layers`, recursing
into nested models) and names each leaf layer by its path, e.g.
``encoder/block_1/dense``; the same name again under one parent gets the
first suffix ``_2``, ``_3``, … that no sibling is named, so tags never
collide (``proj, proj, proj_2`` become ``proj, proj_3, proj_2``; variable
names likewise). It works for Sequential, Functional, nested and
subclassed models alike.

`capture_outputs` records what each layer returns while the model runs on
the probe batch. Keras has no forward hooks, so it wraps each layer's
``call`` for the duration of one forward pass (an instance attribute, removed
afterwards); this sees every layer that runs through ``layer(...)``, whatever
kind of model calls it. `probe` names a call's tensor ``output`` (first
call), ``output_1`` (second call of a shared layer), …; a call that returns
several tensors (an LSTM with ``return_state``) gives ``output/0``,
``output/1``, … (second call: ``output_1/0``, …).
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import keras

from callbacks.downstream import TRANSPOSED_CONVOLUTIONS, Check, outgoing_checks
from kinit.graph import graph_of
from kinit.nonlinearity import activation_nonlinearity, layer_nonlinearity


@dataclass
class LayerEntry:
    """A leaf layer (or a model's own variables) under its unique path.

    `outgoing` lists the weights (with an axis) that must be equal across the
    layer's units for nothing downstream to tell them apart (see
    `callbacks.downstream`); None when something does or it is not known.
    """

    path: str
    layer: keras.layers.Layer
    weights: List[Tuple[str, keras.Variable]] = field(default_factory=list)
    activation: Optional[str] = None
    units_axis: int = -1
    captures_outputs: bool = True
    outgoing: Optional[List[Check]] = None


def discover(model: keras.Model, layer_filter: Optional[str] = None) -> List[LayerEntry]:
    """The selected leaf layers of a built `model`, in `model.layers` order.

    `layer_filter` is a regular expression searched in each layer path.
    Variables a model creates itself (outside any layer) appear under the
    model's path with ``captures_outputs=False``.
    """
    pattern = re.compile(layer_filter) if layer_filter is not None else None
    seen_variables: set = set()
    outgoing = outgoing_checks(model)
    entries = []
    for path, layer in _walk(model, prefix=""):
        entry = _entry(path, layer, seen_variables, outgoing.get(id(layer)))
        if pattern is None or pattern.search(path):
            entries.append(entry)
    return [e for e in entries if e.weights or e.captures_outputs]


def is_subclassed(model: keras.Model) -> bool:
    """Whether `model` (or a model nested in it) defines its own `call`."""
    models = [model] + [layer for _, layer in _walk(model, "", leaves=False)]
    return any(graph_of(m) is None for m in models)


@contextlib.contextmanager
def capture_outputs(entries: List[LayerEntry]) -> Iterator[List[Tuple[str, list]]]:
    """Record ``(path, tensors)`` for every layer call, in call order: the
    tensors that call returned (one, or several, like an LSTM's states)."""
    outputs: List[Tuple[str, list]] = []
    patched = []
    try:
        for entry in entries:
            if entry.captures_outputs:
                _wrap_call(entry.layer, entry.path, outputs)
                patched.append(entry.layer)
        yield outputs
    finally:
        for layer in patched:
            layer.__dict__.pop("call", None)


def _wrap_call(layer, path: str, outputs: list) -> None:
    original = layer.call

    @functools.wraps(original)
    def recording_call(*args, **kwargs):
        result = original(*args, **kwargs)
        tensors = [value for value in keras.tree.flatten(result) if keras.ops.is_tensor(value)]
        if tensors:
            outputs.append((path, tensors))
        return result

    # Set on the instance, bypassing Keras's attribute tracking.
    layer.__dict__["call"] = recording_call


def _walk(model, prefix: str, leaves: bool = True):
    """(path, layer) for every leaf (or, with leaves=False, nested model)."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer, name in zip(layers, unique_names([layer.name for layer in layers])):
        path = f"{prefix}{name}"
        if isinstance(layer, keras.Model):
            if not leaves:
                yield path, layer
            yield from _walk(layer, f"{path}/", leaves)
            if leaves:
                yield path, layer  # the model's own variables, if any
        elif leaves:
            yield path, layer
    if leaves and not prefix:
        yield model.name, model


def _entry(path: str, layer, seen_variables: set, outgoing: Optional[List[Check]]) -> LayerEntry:
    is_model = isinstance(layer, keras.Model)
    variables = [v for v in layer.weights if id(v) not in seen_variables]
    seen_variables.update(id(v) for v in variables)
    names = unique_names([_local_name(v, layer.name) for v in variables])
    return LayerEntry(
        path=path,
        layer=layer,
        weights=list(zip(names, variables)),
        activation=_activation_name(layer),
        units_axis=-2 if isinstance(layer, TRANSPOSED_CONVOLUTIONS) else -1,
        captures_outputs=not is_model,
        outgoing=outgoing,
    )


def unique_names(names: Sequence[str]) -> List[str]:
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


def _local_name(variable, layer_name: str) -> str:
    """The variable's path below its layer, e.g. ``kernel`` or ``query/kernel``."""
    parts = variable.path.split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == layer_name:
            return "/".join(parts[index + 1:])
    return variable.name


def _activation_name(layer) -> Optional[str]:
    """The nonlinearity the layer applies (itself, like ``Softmax()``, or as its
    ``activation``), named as `kinit.calculate_gain` names it (``relu6`` is
    ``relu``, ``hard_sigmoid`` is ``sigmoid``); an unknown function by its name."""
    nonlinearity = layer_nonlinearity(layer, "")
    if nonlinearity is None:
        function = getattr(layer, "activation", None)
        if not callable(function):
            return None
        nonlinearity = activation_nonlinearity(function, "")
    return nonlinearity.label if nonlinearity.name == "unknown" else nonlinearity.name
