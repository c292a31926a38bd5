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

`Residuals` gives the structure the recipes (`kinit.recipes`) need, with the
kernel layers (layers that own a ``kernel``, ``depthwise_kernel`` or
``pointwise_kernel``: Dense, EinsumDense, Conv*, …; a wrapper or recurrent
layer whose inner layers own one, such as ``TimeDistributed(Dense)``)
placed in it:

* **Residual sums**: sums whose inputs fork from a common call (so not
  ``token_embedding + position_embedding`` of two inputs) and that have a
  residual branch holding at least one kernel layer. Their *shortcut* is
  their shortest input: empty for an identity, ``Conv → BN`` for a
  projection.
* **Branches**, as `Branch`: the calls after the fork (those that descend
  from the sum's common ancestors), plus the kernel layers that feed them
  from outside the stream (the key and value projections of
  cross-attention, reading an encoder's output), but not what lies behind
  those (the encoder itself). On a branch, a kernel layer's *position* is
  the number of kernel layers on the longest path from the fork to it,
  itself included; the branch's *depth* m is that number at the branch's
  output; its *last* layers are the kernel layers whose output reaches the
  sum with no other kernel layer or sum between (a GPT block's attention
  output projection and its MLP's second Dense; ResNet's second
  convolution).
* **Trunks**: the residual streams. A residual sum follows the latest
  residual sum its shortcut descends from; a trunk is a chain of sums each
  following the one before (``x = x + attn(norm(x)); x = x + mlp(norm(x))``
  in a pre-norm transformer, ``x = norm(x + f(x))`` in a post-norm one, a
  ResNet's blocks, also across projection shortcuts). An encoder-decoder
  model has two trunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from kinit.keras_adapter import own_weights
from kinit.layer_kinds import NORMALIZATION, NORMALIZATION_OR_NOISE, RUNS_SUBLAYERS_INSIDE, SUM_OPS, SUMS
from kinit.model_map import Call, LayerRecord, ModelMap

#: The weights that make a layer a *kernel layer* of a branch.
KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


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


# The structure the recipes read ----------------------------------------------


def is_kernel_call(call: Call) -> bool:
    """Whether `call` runs a layer that owns a kernel (Dense, EinsumDense, Conv*,
    …), or a wrapper or recurrent layer whose inner layers do
    (``TimeDistributed(Dense)``, ``LSTM``)."""
    if call.kind != "layer" or call.record is None or call.opaque:
        return False
    layer = call.record.layer
    weights = layer.weights if isinstance(layer, RUNS_SUBLAYERS_INSIDE) else own_weights(layer)
    return any(weight.name in KERNELS for weight in weights)


@dataclass(eq=False)
class Branch:
    """One input of a residual sum, with the kernel layers on it.

    Attributes:
        sum: the `ResidualSum` it enters.
        producer: the call whose output the sum adds.
        calls: its calls in run order (empty for an identity shortcut).
        residual: False for the sum's shortcut.
        kernels: its kernel-layer calls in run order.
        positions: each kernel call's position: the kernel layers on the
            longest path from the fork to it, itself included (1, 2, …).
        depth: m, the kernel layers on the longest path through the branch.
        last: the kernel calls whose output reaches the sum with no other
            kernel layer or sum between.
    """

    sum: "ResidualSum"
    producer: Call
    calls: List[Call]
    residual: bool
    kernels: List[Call] = field(default_factory=list)
    positions: Dict[Call, int] = field(default_factory=dict)
    depth: int = 0
    last: List[Call] = field(default_factory=list)

    def describe(self) -> str:
        """``'the residual branch into 'add' (Add)'`` or ``'the shortcut into …'``."""
        kind = "residual branch" if self.residual else "shortcut"
        return f"the {kind} into {self.sum.call.label}"


@dataclass(eq=False)
class ResidualSum:
    """A residual sum: its residual branches, its shortcut, the sum before it on its trunk."""

    call: Call
    branches: List[Branch]
    shortcut: Branch
    previous: Optional["ResidualSum"] = None

    @property
    def label(self) -> str:
        return self.call.label


@dataclass(eq=False)
class Placement:
    """Where a kernel call lies: its innermost branch and its position on it
    (None for a kernel layer on no branch)."""

    call: Call
    branch: Optional[Branch]
    position: int = 0

    @property
    def is_last(self) -> bool:
        return self.branch is not None and self.call in self.branch.last


class Residuals:
    """The residual sums, branches and trunks of a model map (see the module docstring).

    Attributes:
        sums: the residual sums in run order.
        trunks: the residual streams, each a list of residual sums in run
            order; a sum where a stream forks lies on each of its trunks.
    """

    def __init__(self, model_map: ModelMap):
        self.model_map = model_map
        self._kernel = {call: is_kernel_call(call) for call in model_map.calls}
        self.sums: List[ResidualSum] = []
        for found in sums(model_map):
            residual = self._residual_sum(found)
            if residual is not None:
                self.sums.append(residual)
        self._link_trunks()
        self._place()

    # Sums and branches -------------------------------------------------------
    def _residual_sum(self, found: Sum) -> Optional[ResidualSum]:
        lineages = [ancestors(producer) | {producer} for producer in found.producers]
        common = set.intersection(*lineages)
        if not common:  # two separate inputs added, no fork
            return None
        branch_calls = [self._branch_calls(lineage - common, common) for lineage in lineages]
        shortest = min(range(len(branch_calls)), key=lambda i: len(branch_calls[i]))
        result = ResidualSum(found.call, [], None)  # type: ignore[arg-type]
        for index, (producer, calls) in enumerate(zip(found.producers, branch_calls)):
            branch = self._branch(result, producer, calls, residual=index != shortest)
            if index == shortest:
                result.shortcut = branch
            elif len(calls) > len(branch_calls[shortest]) and branch.kernels:
                result.branches.append(branch)
        return result if result.branches else None

    def _branch_calls(self, lineage: Set[Call], common: Set[Call]) -> List[Call]:
        """The calls of `lineage` (the producer's ancestors after the fork) that
        descend from the fork, and the kernel layers feeding those from outside."""
        after_fork: Set[Call] = set()
        for call in sorted(lineage, key=lambda c: c.index):
            if any(source in common or source in after_fork for source in call.inputs):
                after_fork.add(call)
        feeding, stack = set(), [source for call in after_fork for source in call.inputs]
        while stack:
            call = stack.pop()
            if call in after_fork or call in feeding or call not in lineage or is_sum(call):
                continue
            feeding.add(call)
            if not self._kernel[call]:
                stack.extend(call.inputs)
        # Only kernel layers, and what lies between them and the fork's side, are kept.
        kept = {call for call in feeding if self._kernel[call] or self._reaches_kernel(call, feeding)}
        return sorted(after_fork | kept, key=lambda c: c.index)

    def _reaches_kernel(self, call: Call, feeding: Set[Call]) -> bool:
        """Whether a kernel layer among `feeding` lies behind `call` (a reshape
        between a projection and the attention op), so `call` is between them."""
        stack, seen = list(call.inputs), set()
        while stack:
            current = stack.pop()
            if current in seen or current not in feeding:
                continue
            seen.add(current)
            if self._kernel[current]:
                return True
            stack.extend(current.inputs)
        return False

    def _branch(self, owner: ResidualSum, producer: Call, calls: List[Call], residual: bool) -> Branch:
        members = set(calls)
        depth_out: Dict[Call, int] = {}
        for call in calls:
            before = max((depth_out[source] for source in call.inputs if source in members), default=0)
            depth_out[call] = before + (1 if self._kernel[call] else 0)
        kernels = [call for call in calls if self._kernel[call]]
        branch = Branch(owner, producer, calls, residual, kernels, {call: depth_out[call] for call in kernels},
                        depth_out.get(producer, 0))
        stack, seen = [producer] if producer in members else [], set()
        while stack:
            call = stack.pop()
            if call in seen:
                continue
            seen.add(call)
            if self._kernel[call]:
                branch.last.append(call)
            elif not (is_sum(call) and call is not producer):
                stack.extend(source for source in call.inputs if source in members)
        branch.last.sort(key=lambda c: c.index)
        return branch

    # Trunks ------------------------------------------------------------------
    def _link_trunks(self) -> None:
        by_call = {residual.call: residual for residual in self.sums}
        followed = set()
        for residual in self.sums:
            start = residual.shortcut.producer
            before = [call for call in ancestors(start) | {start} if call in by_call]
            if before:
                residual.previous = by_call[max(before, key=lambda c: c.index)]
                followed.add(residual.previous)
        self.trunks: List[List[ResidualSum]] = []
        for residual in self.sums:
            if residual in followed:
                continue
            chain, current = [], residual
            while current is not None:
                chain.append(current)
                current = current.previous
            self.trunks.append(chain[::-1])

    def trunk(self) -> List[ResidualSum]:
        """The longest trunk (the last of equally long ones); empty if there is none."""
        return max(self.trunks, key=len, default=[])

    def trunk_of(self, residual: ResidualSum) -> List[ResidualSum]:
        """The longest trunk that `residual` lies on."""
        return max((trunk for trunk in self.trunks if residual in trunk), key=len)

    def residual_branches(self) -> List[Branch]:
        """Every residual branch, in the run order of their sums."""
        return [branch for residual in self.sums for branch in residual.branches]

    # Placement of kernel layers ----------------------------------------------
    def _place(self) -> None:
        self._placements: Dict[Call, Placement] = {}
        every = [branch for residual in self.sums for branch in residual.branches + [residual.shortcut]]
        for branch in sorted(every, key=lambda b: len(b.calls), reverse=True):
            for call in branch.kernels:  # the innermost (shortest) branch is placed last and wins
                self._placements[call] = Placement(call, branch, branch.positions[call])

    def placement(self, call: Call) -> Placement:
        """Where the kernel call `call` lies (its innermost branch, or none)."""
        return self._placements.get(call) or Placement(call, None)

    def placements(self, record: LayerRecord) -> List[Placement]:
        """The placement of each call of `record`'s layer."""
        return [self.placement(call) for call in self.model_map.calls_of(record)]

    def outputs_kernels(self) -> List[Call]:
        """The kernel calls whose output reaches a model output with no other
        kernel layer between (a classifier)."""
        found, seen = [], set()
        stack = [call for call in self.model_map.calls if call.is_output]
        while stack:
            call = stack.pop()
            if call in seen:
                continue
            seen.add(call)
            if self._kernel.get(call):
                found.append(call)
            else:
                stack.extend(call.inputs)
        return sorted(found, key=lambda c: c.index)
