"""What reads a layer's units: the weights that could tell them apart.

Units with the same incoming weights (kernel column and bias) compute the
same output. They stay identical for ever only if nothing after the layer
treats them differently: then swapping two of them leaves the model, the
loss and so every update unchanged, whatever the optimizer. That holds when
every layer reading them

* holds the same weights for each of them: a ``Dense`` or convolution
  kernel whose rows (the input-unit axis) are all equal, or
* acts on each unit alike — an activation, dropout, noise, pooling,
  padding, cropping or normalization layer whose per-unit weights
  (``gamma``, ``beta``, PReLU's ``alpha``, …) are equal across units, or a
  ``Reshape`` / ``Flatten`` — and is itself read only by such layers.

A layer whose output is a model output (directly or through such layers) is
read by the loss, which gives each unit its own target: its units part at the
first step (a zero-initialized classifier head is a deliberate choice). So
does a layer read by anything else (merges, custom layers), or whose wiring
is not known (subclassed models): no claim is made there.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import keras

from kinit.graph import trace
from kinit.nonlinearity import PASS_THROUGH, layer_nonlinearity
from kinit.rules import TRANSPOSED as TRANSPOSED_CONVOLUTIONS

#: A weight whose slices along an axis must all be equal: (variable, axis).
Check = Tuple[keras.Variable, int]

#: Layers looked through: they act on every unit (channel) alike besides their
#: per-unit weights, or (Reshape, Flatten) keep the values and leave the test
#: to the kernel rows after them. GroupNormalization mixes units in a group.
UNIT_WISE = tuple(layer for layer in PASS_THROUGH if layer is not keras.layers.GroupNormalization)

#: Layers whose kernel has the input units on axis -2 ...
KERNEL_LAYERS = (
    keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
)
#: ... or on axis -1, (…, out, in): `TRANSPOSED_CONVOLUTIONS`.


def outgoing_checks(model: keras.Model) -> Dict[int, Optional[List[Check]]]:
    """Per layer (by ``id``), the checks that make its units indistinguishable
    downstream, or None where they are told apart or it cannot be known.

    Only layers of a Functional or Sequential graph (also nested) get checks.
    """
    try:
        with trace(model) as traced:
            return {id(node.layer): _readers(node) for node in traced.layers() if node.in_graph}
    except Exception:  # a model kinit's tracer cannot replay: no claim anywhere
        return {}


def _readers(node) -> Optional[List[Check]]:
    if not node.outputs:
        return None  # a model output: the loss reads each unit on its own
    checks: List[Check] = []
    for reader in node.outputs:
        layer = reader.layer
        if isinstance(layer, TRANSPOSED_CONVOLUTIONS):
            checks.append((layer.kernel, -1))
        elif isinstance(layer, KERNEL_LAYERS):
            checks.append((layer.kernel, -2))
        elif isinstance(layer, UNIT_WISE) or layer_nonlinearity(layer, "") is not None:
            after = _readers(reader)
            if after is None:
                return None
            checks += [(weight, -1) for weight in getattr(layer, "weights", [])] + after
        else:
            return None
    return checks
