"""Find the last normalization layer of each residual branch.

Goyal et al. (2017) start every residual block as the identity by setting
the γ of the block's last normalization layer to 0. `residual_norms` finds
those layers in a traced model:

For every ``Add`` layer with two or more distinct inputs, each input's
*branch* is the set of layers it descends from that are not ancestors of all
of the Add's inputs (so the branch starts after the fork). An input is a
residual branch if its branch is longer than the Add's shortest one, and its
last normalization layer is the layer that produces it — a
BatchNormalization, LayerNormalization, GroupNormalization or
RMSNormalization, possibly followed by dropout or noise layers. An identity
shortcut has an empty branch and a projection shortcut (``Conv`` → ``BN``)
a short one, so only the main branch's normalization is selected; when all
branches have the same length none is.
"""

from __future__ import annotations

from typing import Dict, Set

import keras

from kinit.graph import LayerNode
from kinit.nonlinearity import NORMALIZATION, NORMALIZATION_OR_NOISE


def residual_norms(nodes) -> Dict[LayerNode, LayerNode]:
    """Map each residual branch's last normalization node to its Add node."""
    found = {}
    for add in nodes:
        if not isinstance(add.layer, keras.layers.Add) or len(add.inputs) < 2:
            continue
        lineages = [_ancestors(producer) | {producer} for producer in add.inputs]
        common = set.intersection(*lineages)
        lengths = [len(lineage - common) for lineage in lineages]
        for producer, length in zip(add.inputs, lengths):
            norm = _last_normalization(producer)
            if norm is not None and length > min(lengths):
                found[norm] = add
    return found


def _ancestors(node: LayerNode) -> Set[LayerNode]:
    seen, stack = set(), list(node.inputs)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.inputs)
    return seen


def _last_normalization(node: LayerNode):
    while isinstance(node.layer, NORMALIZATION_OR_NOISE) and not isinstance(node.layer, NORMALIZATION):
        if len(node.inputs) != 1:
            return None
        node = node.inputs[0]
    return node if isinstance(node.layer, NORMALIZATION) else None
