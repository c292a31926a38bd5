"""Residual connections in the model map: sums, their branches, their norms.

A residual connection is a *sum*: an ``Add`` layer, or an ``add`` op
(``x + f(x)`` inside a custom layer or subclassed model), with two or more
distinct producers. For each producer its *branch* is the set of calls it
descends from that are not ancestors of every producer of the sum, so the
branch starts after the fork. An identity shortcut has an empty branch and a
projection shortcut (``Conv`` → ``BN``) a short one; the *residual branches*
of a sum are those longer than its shortest one (none when all are equally
long). Everything is read from the map of the model as it runs, never from
layer names.

`residual_norms` gives, for ``zero_residual_gamma`` (Goyal et al. 2017), the
last normalization layer of each residual branch: the layer that produces
the branch's output — a BatchNormalization, LayerNormalization,
GroupNormalization or RMSNormalization — possibly followed by dropout or
noise layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from kinit.layer_kinds import NORMALIZATION, NORMALIZATION_OR_NOISE, SUM_OPS, SUMS
from kinit.model_map import Call, LayerRecord, ModelMap


@dataclass(eq=False)
class Sum:
    """A residual sum: the call, its producers, and the branch of each.

    Attributes:
        call: the ``Add`` layer call or ``add`` op call.
        producers: the calls whose outputs it adds.
        branches: per producer, the calls of its branch in run order.
    """

    call: Call
    producers: List[Call]
    branches: List[List[Call]]

    def residual(self) -> List[int]:
        """The indices of the residual branches: those longer than the shortest."""
        lengths = [len(branch) for branch in self.branches]
        return [i for i, length in enumerate(lengths) if length > min(lengths)]


def is_sum(call: Call) -> bool:
    if call.kind == "op":
        return type(call.operation).__name__ in SUM_OPS
    return isinstance(call.operation, SUMS)


def sums(model_map: ModelMap) -> List[Sum]:
    """Every sum of two or more distinct producers, in run order."""
    found = []
    for call in model_map.calls:
        if not is_sum(call) or len(call.inputs) < 2:
            continue
        lineages = [ancestors(producer) | {producer} for producer in call.inputs]
        common = set.intersection(*lineages)
        branches = [sorted(lineage - common, key=lambda c: c.index) for lineage in lineages]
        found.append(Sum(call, list(call.inputs), branches))
    return found


def residual_norms(model_map: ModelMap) -> Dict[LayerRecord, Call]:
    """Map the record of each residual branch's last normalization layer to its sum."""
    found = {}
    for residual in sums(model_map):
        for index in residual.residual():
            norm = _last_normalization(residual.producers[index])
            if norm is not None:
                found[norm.record] = residual.call
    return found


def ancestors(call: Call) -> Set[Call]:
    """Every call whose output `call` depends on."""
    seen, stack = set(), list(call.inputs)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.inputs)
    return seen


def _last_normalization(call: Call) -> Optional[Call]:
    while call.kind == "layer" and isinstance(call.operation, NORMALIZATION_OR_NOISE) and not isinstance(
        call.operation, NORMALIZATION
    ):
        if len(call.inputs) != 1:
            return None
        call = call.inputs[0]
    is_norm = call.kind == "layer" and isinstance(call.operation, NORMALIZATION) and call.record is not None
    return call if is_norm else None
