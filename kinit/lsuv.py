"""Layer-sequential unit-variance (LSUV) initialization, Mishkin & Matas 2015."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, List, Optional

import keras
import numpy as np
from keras import ops, tree

from kinit import keras_adapter
from kinit.base import RandomInitializer
from kinit.capture import capturing
from kinit.inputs import Batch, check_against_model, check_batch_size, read_batch
from kinit.layer_kinds import LINEAR_IN_KERNEL, calibrated_kernel_name, is_float
from kinit.model_map import LayerRecord, map_model, require_built
from kinit.orthogonal import Orthogonal
from kinit.report import Report
from kinit.validation import check_bool, check_int, check_number, check_seed

OWNER = "lsuv"

#: Layers whose output is linear in one kernel, so scaling it scales the output.
SUPPORTED = LINEAR_IN_KERNEL

#: Examples read from a dataset or other iterable `x`.
MAX_STREAM_EXAMPLES = 4096

#: An output std below this fraction of the target is "dead": no finite
#: float32 rescaling would bring it back.
DEAD_FRACTION = 1e-7


@dataclass
class LsuvRow:
    """One targeted layer of an `lsuv` report.

    Attributes:
        path: the layer's path in the model.
        layer_class: the layer's class name.
        iterations: rescalings applied to its kernel.
        std: the last measured std of its pre-activation output (nan if
            non-finite).
        status: ``"converged"``, ``"not converged"`` (`max_iter` reached) or
            ``"skipped"`` (dead or non-finite output; kernel left unscaled).
        reason: details, e.g. the target or why the layer was skipped.
    """

    path: str
    layer_class: str
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

    columns = ("path", "layer_class", "iterations", "std", "status", "reason")
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
    nonlinearity). The targets are captured as the model runs (see
    `kinit.capture`), and each pass measures every target, so the pass that
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
            keyed by input name), e.g. a few hundred training samples; read
            as `fit` reads data (`kinit.inputs`): a tuple is ``(x, y)`` (``y``
            is ignored), and a dataset or other iterable of batches gives its
            first `MAX_STREAM_EXAMPLES` examples. A subclassed model's inputs
            are checked against the shape it was built with (any batch size).
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
    x = _model_inputs(model, x)
    model_map = map_model(model, x)
    select = _selector(model_map, layers)
    targets = [record for record in model_map.leaves() if select(record)]

    report = LsuvReport()
    probe = _Probe(model, targets)
    for record in targets:
        if orthogonal_first:
            for kernel in _weights(record.layer, ("kernel", "depthwise_kernel", "pointwise_kernel")):
                kernel.assign(Orthogonal(1.0, seed=seeds.next_seed())(tuple(kernel.shape), dtype=kernel.dtype))
        for bias in _weights(record.layer, ("bias",)):
            bias.assign(ops.zeros(bias.shape, dtype=bias.dtype))
    stds = probe.stds(x, batch_size) if targets else {}
    for record in probe.order(targets):
        kernel = _scaled_kernel(record.layer)
        iterations, std = 0, stds[record]
        while True:
            status = _status(std, target_std, tol)
            if status is not None or iterations == max_iter:
                break
            kernel.assign(ops.cast(kernel.value * (target_std / std), kernel.dtype))
            iterations += 1
            stds = probe.stds(x, batch_size)
            std = stds[record]
        if status is None:
            status = ("not converged", f"max_iter={max_iter} reached")
        report.append(LsuvRow(record.path, record.layer_class, iterations, float(std), *status))
    report.forward_passes = probe.passes
    report.seconds = time.perf_counter() - started
    return report


class _Probe:
    """The std of every target's pre-activation output over all of `x`, one
    pass of the model per call (`kinit.capture`), in chunks of rows."""

    def __init__(self, model, targets: List[LayerRecord]):
        self.model, self.targets = model, targets
        self.passes = 0
        self.first_seen: dict = {}

    def stds(self, x, batch_size: int) -> dict:
        rows = len(tree.flatten(x)[0])
        totals = {record: np.zeros(2) for record in self.targets}
        for start in range(0, rows, batch_size):
            chunk = tree.map_structure(lambda a: a[start : start + batch_size], x)
            weight = len(tree.flatten(chunk)[0]) / rows
            for record, (mean, variance) in self._moments(chunk).items():
                # Sums of first and second moments combine exactly across chunks.
                totals[record] += weight * np.array([mean, variance + mean**2])
        self.passes += 1
        with np.errstate(invalid="ignore"):
            return {record: float(np.sqrt(max(total[1] - total[0] ** 2, 0.0))) if np.all(np.isfinite(total))
                    else float("nan") for record, total in totals.items()}

    def _moments(self, chunk) -> dict:
        targets = [(record, record.layer) for record in self.targets]
        with capturing(targets, where="pre_activation", reduce=_moments) as captures:
            self.model(chunk, training=False)
        moments = {}
        for record, (value,) in captures:  # a layer called twice is measured at its first call
            moments.setdefault(record, ops.convert_to_numpy(value).astype("float64"))
            self.first_seen.setdefault(record, len(self.first_seen))
        missing = [record.path for record in self.targets if record not in moments]
        if missing:
            raise ValueError(f"{OWNER}: layers {missing} did not run when the model was called.")
        return moments

    def order(self, targets: List[LayerRecord]) -> List[LayerRecord]:
        """`targets` in the order they ran (the truth for any kind of model)."""
        return sorted(targets, key=lambda record: self.first_seen.get(record, len(self.first_seen)))


def _moments(x):
    x = ops.cast(x, "float32")
    return ops.stack([ops.mean(x), ops.var(x)])


def _status(std: float, target: float, tol: float):
    """("converged" | "skipped", reason), or None to keep rescaling."""
    if not math.isfinite(std):
        return "skipped", "non-finite output; kernel left unscaled"
    if std < DEAD_FRACTION * target:
        return "skipped", f"dead: output std {std:.3g} ≈ 0; kernel left unscaled"
    if abs(std / target - 1.0) <= tol:
        return "converged", f"|std/{target:g} − 1| ≤ {tol:g}"
    return None


def _weights(layer, names) -> list:
    return [weight for weight in layer.weights if weight.name in names]


def _scaled_kernel(layer):
    return _weights(layer, (calibrated_kernel_name(layer),))[0]


def _selector(model_map, layers):
    """A predicate on records: is this a layer to calibrate?"""
    if layers is None:
        return lambda record: isinstance(record.layer, SUPPORTED) and is_float(_scaled_kernel(record.layer))
    if isinstance(layers, (str, keras.layers.Layer)):
        layers = [layers]
    if not isinstance(layers, Iterable):
        raise ValueError(
            f"{OWNER}: argument `layers` must be None, a layer, a layer name or path, or an iterable "
            f"of them; received layers={layers!r}."
        )
    wanted = list(layers)
    records = [record for record in model_map.records if record is not model_map.root]
    for item in wanted:
        hits = [record for record in records if _names(item, record)]
        if not hits:
            known = ", ".join(f"{record.path} ({record.layer_class})" for record in records)
            raise ValueError(
                f"{OWNER}: argument `layers` must hold layers of the model or their names/paths; "
                f"{item!r} is not one. Layers: {known}."
            )
        for record in hits:
            if not isinstance(record.layer, SUPPORTED):
                raise ValueError(
                    f"{OWNER}: cannot calibrate {record.path!r} ({record.layer_class}); supported layers "
                    f"are {', '.join(cls.__name__ for cls in SUPPORTED)}."
                )
    return lambda record: any(_names(item, record) for item in wanted)


def _names(item, record: LayerRecord) -> bool:
    """Whether `item` (a layer, a name or a path) names `record`."""
    if isinstance(item, keras.layers.Layer):
        return item is record.layer
    return item in (record.path, record.layer.name)


def _model_inputs(model, x):
    """`x` read as `fit` reads data (a tuple is (x, y): y is ignored) and
    checked against the model's inputs, in the structure the model takes."""
    batch = read_batch(OWNER, x, "x", MAX_STREAM_EXAMPLES)
    arrays = check_against_model(OWNER, model, batch.x, "x")
    check_batch_size(OWNER, Batch(arrays), "x", minimum=1, maximum=None)
    graph = keras_adapter.graph_inputs(model)
    return arrays if graph is None else tree.pack_sequence_as(graph, arrays)
