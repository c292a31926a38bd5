"""Which kernel layers feed an attention as its query, key or value.

Read from the model map (`kinit.model_map`), never from layer names:

* **The attention op** (``keras.ops.dot_product_attention``, which
  `MultiHeadAttention` calls unless it needs the scores): the kernel layers
  behind its ``query``, ``key`` and ``value`` arguments, by the names of the
  op's parameters.
* **A softmax** (a `Softmax` layer, an ``Activation("softmax")`` or
  ``keras.ops.softmax``), as in `MultiHeadAttention` with dropout or returned
  scores, or attention written with ops: the kernel layers behind its input
  are the *query or key* (the product of the two is not told apart), and
  those behind the other operand of the first call that combines the
  softmax's output with something else (after dropout, reshapes) are the
  *value*.

"Behind" means reached by walking back through calls that hold no kernel
and are no sum, stopping at the first kernel layer on each path (so a
reshape or the ``query · 1/√d`` scaling between a projection and the
attention is looked through).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Set, Tuple

from kinit.model_map import Call
from kinit.nonlinearity import layer_nonlinearity, looks_through
from kinit.residual import is_sum

QUERY, KEY, VALUE = "query", "key", "value"
#: The role of a kernel layer behind a softmax's input: the query or the key.
QUERY_OR_KEY = "query or key"
#: Roles whose projections produce the attention scores.
SCORE_ROLES = (QUERY, KEY, QUERY_OR_KEY)

#: How many pass-through calls (dropout, reshapes) are followed after a softmax.
MAX_STEPS = 8


def attention_roles(calls: Iterable[Call], is_kernel: Callable[[Call], bool]) -> Dict[Call, Tuple[str, Call]]:
    """The role of each kernel call among `calls` that feeds an attention
    among `calls`, with the attention's call (op or softmax)."""
    members = list(calls)
    allowed: Set[Call] = set(members)
    roles: Dict[Call, Tuple[str, Call]] = {}
    for call in members:
        if all(name in call.arguments for name in (QUERY, KEY, VALUE)):
            for name in (QUERY, KEY, VALUE):
                for source in call.argument(name):
                    for kernel in behind(source, allowed, is_kernel):
                        roles[kernel] = (name, call)
    for call in members:
        if call.kind == "layer" and is_kernel(call):
            continue  # Dense(activation="softmax") is a layer, not an attention
        found = layer_nonlinearity(call.operation, "")
        if found is None or found.name != "softmax":
            continue
        masks = set(call.argument("mask"))
        for source in call.inputs:
            if source not in masks:
                for kernel in behind(source, allowed, is_kernel):
                    roles.setdefault(kernel, (QUERY_OR_KEY, call))
        for source in _combined_with(call, allowed):
            for kernel in behind(source, allowed, is_kernel):
                roles.setdefault(kernel, (VALUE, call))
    return roles


def behind(call: Call, allowed: Set[Call], is_kernel: Callable[[Call], bool]) -> List[Call]:
    """The kernel calls reached from `call` (itself included) walking back
    through calls without a kernel that are no sums, within `allowed`."""
    found, seen, stack = [], set(), [call]
    while stack:
        current = stack.pop()
        if current in seen or current not in allowed:
            continue
        seen.add(current)
        if is_kernel(current):
            found.append(current)
        elif not is_sum(current):
            stack.extend(current.inputs)
    return sorted(found, key=lambda c: c.index)


def _combined_with(softmax: Call, allowed: Set[Call]) -> List[Call]:
    """The other inputs of the first calls that combine the softmax's output
    (after dropout, reshapes) with something else: the values."""
    others, frontier = [], [softmax]
    for _ in range(MAX_STEPS):
        following = []
        for call in frontier:
            for consumer in call.consumers:
                if consumer not in allowed:
                    continue
                rest = [source for source in consumer.inputs if source is not call]
                if rest:
                    others.extend(source for source in rest if source not in others)
                elif looks_through(consumer):
                    following.append(consumer)
        if not following:
            break
        frontier = following
    return others
