"""Batches of data given to kinit: read them as `fit` does, check them against a model.

`lsuv`, `diagnose` and `InitDiagnostics` take a batch of a model's inputs
(and for gradients its targets). They read it the way `keras.Model.fit`
does, so that what works there works here:

* a tuple is ``(x, y)`` or ``(x, y, sample_weight)``; several inputs go in
  a list or a dict (keyed by input name), never in a tuple;
* a `tf.data.Dataset` or any other iterable of such batches (a generator, a
  `keras.utils.PyDataset`) is read batch by batch up to the number of
  examples wanted;

and check it against the model's inputs before anything runs, so that a
mistake gives one plain line naming the expected and received shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

import keras
import numpy as np
from keras import tree

from kinit import keras_adapter


@dataclass
class Batch:
    """One batch as NumPy arrays: inputs `x`, targets `y` and `sample_weight`
    (None where not given)."""

    x: Any
    y: Any = None
    sample_weight: Any = None

    @property
    def size(self) -> int:
        return batch_size(self.x)


def read_batch(owner: str, data, argument: str, max_examples: int, *, with_targets: bool = True) -> Batch:
    """`data` as a `Batch` of at most `max_examples` examples.

    `data` is ``x``, ``(x, y)``, ``(x, y, sample_weight)`` (with
    `with_targets`; without, a tuple is one input structure), or a dataset /
    iterable of such batches, of which the first ones are concatenated up
    to `max_examples` examples.
    """
    if _is_stream(data):
        data = _take(owner, data, argument, max_examples)
    if with_targets and isinstance(data, tuple) and len(data) in (2, 3):
        x, y, sample_weight = (tuple(data) + (None,))[:3]
    elif with_targets and isinstance(data, tuple):
        raise ValueError(
            f"{owner}: argument `{argument}` is read as `fit` reads data: a tuple must be (x, y) or "
            f"(x, y, sample_weight); received a tuple of {len(data)} items. Pass several inputs as a list "
            "or a dict."
        )
    else:
        x, y, sample_weight = data, None, None
    try:
        x, y, sample_weight = (None if part is None else tree.map_structure(_to_numpy, part)
                               for part in (x, y, sample_weight))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: argument `{argument}` must hold arrays (or a list/dict of arrays); "
                         f"{error}") from None
    return Batch(x, y, sample_weight)


def check_batch_size(owner: str, batch: Batch, argument: str, minimum: int, maximum: Optional[int],
                     target_arguments: Optional[tuple] = None) -> None:
    """Raise `ValueError` unless `batch` is one batch of `minimum` to `maximum`
    examples, its targets and sample weights as many. Messages name
    `argument`, or for the targets and sample weights `target_arguments`
    (e.g. ``("y", "sample_weight")``) where they were separate arguments."""
    sizes = _sizes(batch.x)
    limit = f"{minimum} to {maximum}" if maximum else f"at least {minimum}"
    if len(sizes) != 1 or sizes[0] < minimum or (maximum and sizes[0] > maximum):
        raise ValueError(
            f"{owner}: argument `{argument}` must hold one batch of {limit} examples (a slice such as "
            f"x[:256]); received inputs with batch sizes {sizes or 'none'}.")
    names = target_arguments or (argument, argument)
    for name, part, named in zip(("targets", "sample weights"), (batch.y, batch.sample_weight), names):
        if part is not None and _sizes(part) != sizes:
            raise ValueError(
                f"{owner}: argument `{named}` must hold {name} for the {sizes[0]} examples of x "
                f"(a slice such as y[:{sizes[0]}]); received {name} with batch sizes {_sizes(part) or 'none'}.")


def check_against_model(owner: str, model, x, argument: str, y=None):
    """`x` matched to the model's inputs, or `ValueError` in one plain line.

    A model with a graph (Functional, Sequential) gets a list in the order
    of its inputs (a dict is matched by input name, as Keras does, never by
    key order); a model without one gets `x` as given, checked against the
    shape it was built with where Keras recorded it (any batch size). When
    `x` does not fit but ``(x, y)`` would fit a model of two inputs, the
    message says that a tuple is read as ``(x, y)``.
    """
    graph = keras_adapter.graph_inputs(model)
    if graph is None:
        _check_built_shape(owner, model, x, argument)
        return x
    refs = tree.flatten(graph)
    try:
        arrays = _by_input_name(owner, graph, refs, x, argument) if isinstance(x, dict) else tree.flatten(x)
        if len(arrays) != len(refs):
            raise ValueError(
                f"{owner}: model {model.name!r} takes {len(refs)} input(s) of shape(s) "
                f"{_shapes(refs)}; argument `{argument}` holds {len(arrays)} array(s) of shape(s) "
                f"{[a.shape for a in arrays]}.")
        for array, ref in zip(arrays, refs):
            if not _fits(array.shape, tuple(ref.shape)):
                raise ValueError(
                    f"{owner}: model {model.name!r} expects input {ref.name!r} of shape {tuple(ref.shape)} "
                    f"(None = any size); argument `{argument}` holds an array of shape {array.shape}.")
    except ValueError as error:
        if y is not None and _fits_as_inputs(refs, tree.flatten(x) + tree.flatten(y)):
            raise ValueError(
                f"{error} A tuple is read as (x, y) as `fit` reads it; for a model of {len(refs)} inputs "
                "pass them as a list or a dict.") from None
        raise
    return arrays


def batch_size(x) -> int:
    sizes = _sizes(x)
    return sizes[0] if sizes else 0


def _sizes(data) -> List[int]:
    return sorted({int(np.shape(leaf)[0]) for leaf in tree.flatten(data) if np.ndim(leaf) > 0})


def _is_stream(data) -> bool:
    """A dataset or other iterable of batches (not an array or a structure of them)."""
    if isinstance(data, (tuple, list, dict, str, bytes, np.ndarray)) or keras.ops.is_tensor(data):
        return False
    return hasattr(data, "__iter__")


def _take(owner: str, data, argument: str, max_examples: int):
    """The first batches of `data`, concatenated, cut to `max_examples`."""
    batches, taken = [], 0
    try:
        for batch in data:
            batch = tree.map_structure(_to_numpy, batch)
            batches.append(batch)
            taken += batch_size(batch[0] if isinstance(batch, tuple) else batch)
            if taken >= max_examples:
                break
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: argument `{argument}` is an iterable whose batches could not be read "
                         f"({error}).") from None
    if not batches:
        raise ValueError(f"{owner}: argument `{argument}` is an iterable that yielded no batch.")
    joined = tree.map_structure(lambda *parts: np.concatenate(parts)[:max_examples], *batches)
    return joined


def _to_numpy(value):
    if value is None:
        return None
    return np.asarray(keras.ops.convert_to_numpy(value) if keras.ops.is_tensor(value) else value)


def _by_input_name(owner: str, graph, refs, x: dict, argument: str) -> list:
    """The arrays of the dict `x` in the order of the graph's inputs."""
    # A model built on a dict of inputs is fed by its keys; otherwise by input names.
    keys = {id(tensor): key for key, tensor in graph.items()} if isinstance(graph, dict) else {}
    names = [keys.get(id(ref), ref.name) for ref in refs]
    missing = [name for name in names if name not in x]
    unexpected = sorted(set(x) - set(names), key=str)
    if missing or unexpected:
        raise ValueError(
            f"{owner}: the keys of argument `{argument}` must be the model's input names {names}; "
            f"missing {missing}, unexpected {unexpected}.")
    return [x[name] for name in names]


def _check_built_shape(owner: str, model, x, argument: str) -> None:
    """Compare `x` with the input shape a model without a graph was built with.

    The recorded batch size is that of the call that built the model, so
    only the rank and the other dimensions are compared.
    """
    config = model.get_build_config()
    built = config.get("input_shape") if isinstance(config, dict) else None
    if built is None:
        return
    shapes = tree.map_shape_structure(_Shape, built)
    described = tree.map_structure(lambda array: array.shape, x)
    message = (f"{owner}: model {model.name!r} was built for inputs of shape {built} (any batch size); "
               f"argument `{argument}` holds shape {described}.")
    try:
        tree.assert_same_paths(shapes, x)
    except ValueError:
        raise ValueError(message) from None
    for shape, array in zip(tree.flatten(shapes), tree.flatten(x)):
        if not _fits(array.shape, (None,) * min(1, len(shape.dims)) + shape.dims[1:]):
            raise ValueError(message)


class _Shape:
    """A shape as one leaf of a structure (keras.tree would flatten a tuple)."""

    def __init__(self, dims):
        self.dims = tuple(dims)


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(e is None or e == d for e, d in zip(expected, shape))


def _fits_as_inputs(refs, arrays) -> bool:
    return len(arrays) == len(refs) and all(_fits(np.shape(a), tuple(r.shape)) for a, r in zip(arrays, refs))


def _shapes(refs) -> list:
    return [tuple(ref.shape) for ref in refs]
