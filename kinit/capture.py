"""Capture what layers compute while a model runs.

Keras has no forward hooks. `capturing` replaces, for as long as it is
open, the ``call`` of each given layer by one that records what it returns
(``where="output"``), or the ``activation`` of each given layer by one that
records its input (``where="pre_activation"``: the layer's output before
its activation, the tensor LSUV measures). This sees every call that runs
through ``layer(...)``, whatever kind of model makes it (Functional,
Sequential, subclassed, custom layers, wrappers), eagerly or inside a traced
function, on every backend. LSUV, the diagnostics and the examples all
capture through it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import keras

from kinit import keras_adapter

#: What `capturing` yields: per captured call, in the order the calls ran,
#: the key it was given and the tensors recorded (after `reduce`).
Captures = List[Tuple[Any, list]]


@contextlib.contextmanager
def capturing(
    targets: Sequence[Tuple[Any, keras.layers.Layer]],
    where: str = "output",
    reduce: Optional[Callable] = None,
) -> Iterator[Captures]:
    """Record the calls of the `targets` ``(key, layer)`` while open.

    Args:
        targets: the layers to watch, each with the key its captures carry
            (a path, a record).
        where: ``"output"``: the tensors each call returns (a layer that
            returns several, like an LSTM with ``return_state``, gives
            several); ``"pre_activation"``: the input of the layer's
            ``activation`` (layers without one: their output).
        reduce: a function applied to each recorded tensor before it is
            kept (e.g. to its moments), so only what is needed stays alive.

    Yields:
        The list that fills, call by call, with ``(key, tensors)``.
    """
    if where not in ("output", "pre_activation"):
        raise ValueError(f"capturing: argument `where` must be 'output' or 'pre_activation'; received {where!r}.")
    captures: Captures = []
    keep = reduce or (lambda tensor: tensor)
    with contextlib.ExitStack() as stack:
        for key, layer in targets:
            if where == "pre_activation" and callable(getattr(layer, "activation", None)):
                stack.enter_context(_recording_activation(layer, key, captures, keep))
            else:
                stack.enter_context(keras_adapter.replaced_call(layer, _recording_call(layer, key, captures, keep)))
        yield captures


def _recording_call(layer, key, captures: Captures, keep: Callable) -> Callable:
    original = layer.call

    def call(*args, **kwargs):
        outputs = original(*args, **kwargs)
        tensors = [keep(value) for value in keras.tree.flatten(outputs) if keras.ops.is_tensor(value)]
        if tensors:
            captures.append((key, tensors))
        return outputs

    return call


@contextlib.contextmanager
def _recording_activation(layer, key, captures: Captures, keep: Callable):
    original = layer.activation

    def activation(x):
        captures.append((key, [keep(x)]))
        return original(x)

    layer.activation = activation
    try:
        yield
    finally:
        layer.activation = original
