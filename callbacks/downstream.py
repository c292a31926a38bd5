"""What reads a layer's units: the weights that could tell them apart.

Units with the same incoming weights (kernel column and bias) compute the
same output. They stay identical for ever only if nothing after the layer
treats them differently: then swapping two of them leaves the model, the
loss and so every update unchanged, whatever the optimizer. That holds when
every call reading them (read from the model map, `kinit.model_map`)

* holds the same weights for each of them: a ``Dense`` or convolution
  kernel whose rows (the input-unit axis) are all equal, or
* acts on each unit alike — an activation (layer or op), dropout, noise,
  pooling, padding, cropping or normalization layer whose per-unit weights
  (``gamma``, ``beta``, PReLU's ``alpha``, …) are equal across units, or a
  ``Reshape`` / ``Flatten`` (layer or op) — and is itself read only by such
  calls.

A layer whose output is a model output (directly or through such layers) is
read by the loss, which gives each unit its own target: its units part at the
first step (a zero-initialized classifier head is a deliberate choice). So
does a layer read by anything else (merges, other ops, custom layers), or
whose wiring the map does not know: no claim is made there.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import keras

from kinit.layer_kinds import PASS_THROUGH, READS_UNITS_BY_ROW, input_units_axis
from kinit.model_map import TRACED, Call, ModelMap
from kinit.nonlinearity import layer_nonlinearity

#: A weight whose slices along an axis must all be equal: (variable, axis).
Check = Tuple[keras.Variable, int]

#: Layers looked through: they act on every unit (channel) alike besides their
#: per-unit weights, or (Reshape, Flatten) keep the values and leave the test
#: to the kernel rows after them. GroupNormalization mixes units in a group.
UNIT_WISE = tuple(layer for layer in PASS_THROUGH if layer is not keras.layers.GroupNormalization)
#: Ops looked through likewise (activation ops are found by `layer_nonlinearity`).
UNIT_WISE_OPS = ("Reshape", "Flatten", "Cast", "ConvertToTensor")


def outgoing_checks(model_map: ModelMap) -> Dict[int, Optional[List[Check]]]:
    """Per layer (by ``id``), the checks that make its units indistinguishable
    downstream, or None where they are told apart or it cannot be known."""
    found: Dict[int, Optional[List[Check]]] = {}
    for record in model_map.leaves():
        checks: Optional[List[Check]] = None
        if record.wiring == TRACED and record.inside is None:
            checks = []
            for call in model_map.calls_of(record):
                readers = _readers(call)
                if readers is None:
                    checks = None
                    break
                checks += readers
        found[id(record.layer)] = checks
    return found


def _readers(call: Call) -> Optional[List[Check]]:
    if call.is_output or not call.consumers:
        return None  # a model output: the loss reads each unit on its own
    checks: List[Check] = []
    for reader in call.consumers:
        operation = reader.operation
        if reader.kind == "layer" and isinstance(operation, READS_UNITS_BY_ROW) and not reader.opaque:
            checks.append((operation.kernel, input_units_axis(operation)))
        elif _unit_wise(reader):
            after = _readers(reader)
            if after is None:
                return None
            checks += [(weight, -1) for weight in getattr(operation, "weights", [])] + after
        else:
            return None
    return checks


def _unit_wise(call: Call) -> bool:
    if call.opaque:
        return False
    if call.kind == "op":
        return type(call.operation).__name__ in UNIT_WISE_OPS or layer_nonlinearity(call.operation, "") is not None
    return isinstance(call.operation, UNIT_WISE) or layer_nonlinearity(call.operation, "") is not None
