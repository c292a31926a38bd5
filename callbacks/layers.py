"""Which layers the diagnostics log, under which path, with which variables.

`discover` reads the model map (`kinit.model_map`): every layer that is not
composite gets an entry under its unique path (``encoder/block_1/dense``),
in the order the layers ran, with all its variables (a wrapper's include its
inner layer's, named below it: ``forward_lstm/lstm_cell/kernel``); a
composite layer (a subclassed model, a custom layer holding sublayers, a
nested model) gets an entry only for the variables it creates itself, and
no activation of its own: its sublayers have theirs. Variable names repeated
within one entry get the first suffix ``_2``, ``_3``, … that no sibling has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import keras

from kinit.layer_kinds import units_axis
from kinit.model_map import LayerRecord, ModelMap, unique_names
from kinit.nonlinearity import activation_nonlinearity, layer_nonlinearity

from .downstream import Check, outgoing_checks


@dataclass
class LayerEntry:
    """A layer (or a composite layer's own variables) under its unique path.

    `outgoing` lists the weights (with an axis) that must be equal across the
    layer's units for nothing downstream to tell them apart (see
    `kinit.callbacks.downstream`); None when something does or it is not known.
    """

    path: str
    layer: keras.layers.Layer
    record: Optional[LayerRecord] = None
    weights: List[Tuple[str, keras.Variable]] = field(default_factory=list)
    activation: Optional[str] = None
    units_axis: int = -1
    captures_outputs: bool = True
    outgoing: Optional[List[Check]] = None

    @property
    def layer_class(self) -> str:
        return type(self.layer).__name__


def discover(model_map: ModelMap, layer_filter: Optional[str] = None) -> List[LayerEntry]:
    """The selected layers of a mapped model, in the order they ran.

    `layer_filter` is a regular expression searched in each layer path.
    Layers the map knows never ran (and that hold no variables) are left out.
    """
    pattern = re.compile(layer_filter) if layer_filter is not None else None
    seen_variables: set = set()
    outgoing = outgoing_checks(model_map)
    entries = []
    for record in model_map.records:
        if record.inside is not None:
            continue  # its variables are its wrapper's; its calls run inside it
        entry = _entry(model_map, record, seen_variables, outgoing.get(id(record.layer)))
        if pattern is None or pattern.search(entry.path):
            entries.append(entry)
    return [e for e in entries if e.weights or e.captures_outputs]


def _entry(model_map: ModelMap, record: LayerRecord, seen_variables: set,
           outgoing: Optional[List[Check]]) -> LayerEntry:
    layer = record.layer
    candidates = record.own_weights if record.composite else layer.weights
    variables = [v for v in candidates if id(v) not in seen_variables]
    seen_variables.update(id(v) for v in variables)
    names = unique_names([_local_name(v, layer.name) for v in variables])
    return LayerEntry(
        path=record.path,
        layer=layer,
        record=record,
        weights=list(zip(names, variables)),
        activation=_activation_name(layer),
        units_axis=units_axis(layer),
        captures_outputs=not record.composite and model_map.ran(record) is not False,
        outgoing=outgoing,
    )


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
