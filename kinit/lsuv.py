"""Layer-sequential unit-variance (LSUV) initialization, Mishkin & Matas 2015."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, Optional

import keras
import numpy as np
from keras import ops, tree

from kinit.base import RandomInitializer
from kinit.graph import graph_of, is_float, require_built
from kinit.probe import pre_activation_probe
from kinit.report import Report
from kinit.orthogonal import Orthogonal
from kinit.rules import DEPTHWISE, SEPARABLE, TRANSPOSED
from kinit.validation import check_bool, check_int, check_number, check_seed

OWNER = "lsuv"

#: Layers whose output is linear in one kernel, so scaling it scales the output.
SUPPORTED = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
) + TRANSPOSED + DEPTHWISE + SEPARABLE

#: An output std below this fraction of the target is "dead": no finite
#: float32 rescaling would bring it back.
DEAD_FRACTION = 1e-7


@dataclass
class LsuvRow:
    """One targeted layer of an `lsuv` report.

    Attributes:
        path: the layer's path in the model.
        layer: the layer's class name.
        iterations: rescalings applied to its kernel.
        std: the last measured std of its pre-activation output (nan if
            non-finite).
        status: ``"converged"``, ``"not converged"`` (`max_iter` reached) or
            ``"skipped"`` (dead or non-finite output; kernel left unscaled).
        reason: details, e.g. the target or why the layer was skipped.
    """

    path: str
    layer: str
    iterations: int
    std: float
    status: str
    reason: str

    @property
    def converged(self) -> bool:
        return self.status == "converged"


class LsuvReport(Report):
    """The rows of `lsuv` in the order the layers were processed.

    Attributes:
        forward_passes: passes of the batch through the probe.
        seconds: wall time of the whole call.
    """

    columns = ("path", "layer", "iterations", "std", "status", "reason")
    forward_passes: int = 0
    seconds: float = 0.0

    @property
    def converged(self) -> bool:
        return all(row.converged for row in self)

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.forward_passes} forward passes, {self.seconds:.2f} s"


def lsuv(
    model: keras.Model,
    x,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    orthogonal_first: bool = True,
    layers=None,
    seed: Optional[int] = None,
    *,
    batch_size: int = 256,
) -> LsuvReport:
    """Scale each layer's kernel until its output has standard deviation `target_std`.

    Layer by layer in execution (topological) order over Dense, EinsumDense
    and convolution layers (Conv*, Conv*Transpose, DepthwiseConv*,
    SeparableConv* — the pointwise kernel is scaled): optionally fill the
    kernels with orthonormal matrices first, set the biases to zero, then
    repeat — forward the batch `x`, measure the std σ of the layer's output
    and multiply the kernel by ``target_std / σ`` — until
    ``|σ / target_std − 1| ≤ tol`` or `max_iter` rescalings were made.

    **What is measured:** the layer's output *before* its activation — for
    ``Dense(64, activation="relu")`` the same tensor as for ``Dense(64)``
    followed by ``ReLU()``. With zero biases that output is linear in the
    kernel, so one rescaling reaches the target up to sampling error, and
    the target can be reached whatever the activation (the std *after*
    tanh or sigmoid can never reach 1). It is also what the LSUV paper
    measures (the convolution or inner-product output, before the separate
    nonlinearity). All targets are measured by one probe built once (see
    `kinit.probe`), and each pass measures every target, so the pass that
    checks one layer is the first measurement of the next: a network of L
    layers that converge in one rescaling each takes L + 1 passes.

    The batch runs in inference mode (dropout off, batch normalization on its
    moving statistics), in chunks of `batch_size` rows. A layer whose output
    std is below ``1e-7 · target_std`` (dead: no rescaling would revive it)
    or not finite is reported as skipped and left unscaled; later layers are
    still processed.

    Example:

    >>> model = keras.Sequential([keras.Input((784,))] +
    ...     [keras.layers.Dense(256, activation="relu") for _ in range(10)] +
    ...     [keras.layers.Dense(10, activation="softmax")])
    >>> x = np.random.default_rng(0).normal(size=(512, 784)).astype("float32")
    >>> report = kinit.lsuv(model, x, seed=0)
    >>> print(report)        # per layer: iterations, final std, converged
    >>> report.converged
    True

    Args:
        model: a built Keras model (Functional, Sequential, nested, or
            subclassed — then the layers are found by running it).
        x: a batch of inputs shaped like the model's inputs (an array, or a
            list of arrays in the order of the model's inputs, or a dict
            keyed by input name), e.g. a few hundred training samples. A
            subclassed model's inputs are checked against the shape it was
            built with (any batch size).
        target_std: the std to reach, > 0.
        tol: the relative tolerance on the std, > 0.
        max_iter: the maximum number of rescalings per layer, ≥ 0.
        orthogonal_first: fill the targeted kernels with orthonormal
            matrices first (the paper's recipe); with False the current
            kernels are only rescaled.
        layers: None for every supported layer, or an iterable of layers,
            layer names or layer paths to target.
        seed: None or an int for the orthonormal matrices (every kernel gets
            its own stream).
        batch_size: rows of `x` per forward call (bounds memory; the std is
            over all of `x`).

    Returns:
        An `LsuvReport`: per layer the iterations, the final std, and whether
        it converged or was skipped (and why); plus `forward_passes` and
        `seconds`.

    Reference:
        Mishkin & Matas 2015, "All you need is a good init".
    """
    started = time.perf_counter()
    target_std = check_number(OWNER, "target_std", target_std, minimum=0.0)
    tol = check_number(OWNER, "tol", tol, minimum=0.0)
    max_iter = check_int(OWNER, "max_iter", max_iter, minimum=0)
    batch_size = check_int(OWNER, "batch_size", batch_size, minimum=1)
    seeds = RandomInitializer(check_seed(OWNER, seed))
    orthogonal_first = check_bool(OWNER, "orthogonal_first", orthogonal_first)
    require_built(model, OWNER)
    x = _check_inputs(model, x)
    select = _selector(model, layers)

    report = LsuvReport()
    with pre_activation_probe(model, select) as probe:
        for node in probe.nodes:
            if orthogonal_first:
                for kernel in _weights(node.layer, ("kernel", "depthwise_kernel", "pointwise_kernel")):
                    kernel.assign(Orthogonal(1.0, seed=seeds.next_seed())(tuple(kernel.shape), dtype=kernel.dtype))
            for bias in _weights(node.layer, ("bias",)):
                bias.assign(ops.zeros(bias.shape, dtype=bias.dtype))
        stds = _stds(probe, x, batch_size) if probe.nodes else []
        for index, node in enumerate(probe.nodes):
            kernel = _scaled_kernel(node.layer)
            iterations, std = 0, stds[index]
            while True:
                status = _status(std, target_std, tol)
                if status is not None or iterations == max_iter:
                    break
                kernel.assign(ops.cast(kernel.value * (target_std / std), kernel.dtype))
                iterations += 1
                stds = _stds(probe, x, batch_size)
                std = stds[index]
            if status is None:
                status = ("not converged", f"max_iter={max_iter} reached")
            report.append(LsuvRow(node.path, type(node.layer).__name__, iterations, float(std), *status))
        report.forward_passes = probe.passes
    report.seconds = time.perf_counter() - started
    return report


def _status(std: float, target: float, tol: float):
    """("converged" | "skipped", reason), or None to keep rescaling."""
    if not math.isfinite(std):
        return "skipped", "non-finite output; kernel left unscaled"
    if std < DEAD_FRACTION * target:
        return "skipped", f"dead: output std {std:.3g} ≈ 0; kernel left unscaled"
    if abs(std / target - 1.0) <= tol:
        return "converged", f"|std/{target:g} − 1| ≤ {tol:g}"
    return None


def _stds(probe, x, batch_size: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum(probe.moments(x, batch_size)[:, 1], 0.0))


def _weights(layer, names) -> list:
    return [weight for weight in layer.weights if weight.name in names]


def _scaled_kernel(layer):
    name = "pointwise_kernel" if isinstance(layer, SEPARABLE) else "kernel"
    return _weights(layer, (name,))[0]


def _selector(model, layers):
    """A predicate on trace nodes: is this a layer to calibrate?"""
    if layers is None:
        return lambda node: isinstance(node.layer, SUPPORTED) and is_float(_scaled_kernel(node.layer))
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    if not isinstance(layers, Iterable):
        raise ValueError(
            f"{OWNER}: argument `layers` must be None, a layer, a layer name or path, or an iterable "
            f"of them; received layers={layers!r}."
        )
    wanted = list(layers)
    known = {layer.name for layer in model._flatten_layers(include_self=False, recursive=True)}
    for item in wanted:
        if isinstance(item, keras.layers.Layer):
            item_type = type(item)
        elif isinstance(item, str) and item.split("/")[-1] in known:
            item_type = None
        else:
            raise ValueError(
                f"{OWNER}: argument `layers` must hold layers of the model or their names/paths; "
                f"{item!r} is not one. Layers: {', '.join(sorted(known))}."
            )
        if item_type is not None and not issubclass(item_type, SUPPORTED):
            raise ValueError(
                f"{OWNER}: cannot calibrate {item.name!r} ({item_type.__name__}); supported layers are "
                f"{', '.join(cls.__name__ for cls in SUPPORTED)}."
            )

    def select(node) -> bool:
        hit = any(item is node.layer or item in (node.path, getattr(node.layer, "name", None)) for item in wanted)
        if hit and not isinstance(node.layer, SUPPORTED):
            raise ValueError(
                f"{OWNER}: cannot calibrate {node.path!r} ({type(node.layer).__name__}); supported layers "
                f"are {', '.join(cls.__name__ for cls in SUPPORTED)}."
            )
        return hit

    return select


def _check_inputs(model, x):
    """`x` as numpy arrays, checked against the model's inputs.

    A model with a graph gets a list in the order of its inputs (a dict is
    matched by input name, as Keras does, never by key order); a model
    without one gets `x` as given, checked against the shape it was built
    with when Keras recorded it.
    """
    try:
        x = tree.map_structure(np.asarray, x)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{OWNER}: `x` must be an array or a list/dict of arrays; {error}") from None
    graph = graph_of(model)
    if graph is None:
        _check_built_shape(model, x)
        _check_rows(tree.flatten(x))
        return x
    refs = graph.inputs
    arrays = _by_input_name(graph, x) if isinstance(x, dict) else tree.flatten(x)
    if len(arrays) != len(refs):
        raise ValueError(
            f"{OWNER}: the model takes {len(refs)} input(s) of shapes "
            f"{[tuple(r.shape) for r in refs]}; received {len(arrays)} array(s)."
        )
    for array, ref in zip(arrays, refs):
        expected = tuple(ref.shape)
        if not _fits(array.shape, expected):
            raise ValueError(
                f"{OWNER}: input {ref.name!r} expects shape {expected} (None = any size); "
                f"received x of shape {array.shape}."
            )
    _check_rows(arrays)
    return arrays


def _by_input_name(graph, x: dict) -> list:
    """The arrays of the dict `x` in the order of the graph's inputs."""
    struct = graph.input
    # A model built on a dict of inputs is fed by its keys; otherwise by input names.
    keys = {id(tensor): key for key, tensor in struct.items()} if isinstance(struct, dict) else {}
    names = [keys.get(id(ref), ref.name) for ref in graph.inputs]
    missing = [name for name in names if name not in x]
    unexpected = sorted(set(x) - set(names), key=str)
    if missing or unexpected:
        raise ValueError(
            f"{OWNER}: the keys of `x` must be the model's input names {names}; "
            f"missing {missing}, unexpected {unexpected}."
        )
    return [x[name] for name in names]


def _check_built_shape(model, x) -> None:
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
    try:
        tree.assert_same_paths(shapes, x)
    except ValueError:
        raise ValueError(
            f"{OWNER}: model {model.name!r} was built for inputs of shape {built}; "
            f"received x of shape {described}."
        ) from None
    for shape, array in zip(tree.flatten(shapes), tree.flatten(x)):
        if not _fits(array.shape, (None,) * min(1, len(shape.dims)) + shape.dims[1:]):
            raise ValueError(
                f"{OWNER}: model {model.name!r} was built for inputs of shape {built} "
                f"(any batch size); received x of shape {described}."
            )


class _Shape:
    """A shape as one leaf of a structure (keras.tree would flatten a tuple)."""

    def __init__(self, dims):
        self.dims = tuple(dims)


def _fits(shape, expected) -> bool:
    return len(shape) == len(expected) and all(e is None or e == d for e, d in zip(expected, shape))


def _check_rows(arrays: list) -> None:
    rows = {len(array) if array.ndim else 0 for array in arrays}
    if len(rows) != 1 or 0 in rows:
        raise ValueError(f"{OWNER}: the arrays of `x` must have the same, non-zero number of rows.")
