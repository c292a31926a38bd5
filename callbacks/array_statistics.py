"""The statistics and histograms of a log, computed where the tensors live on JAX and PyTorch.

`callbacks.tensor_statistics` and `callbacks.writer` compute them on the
TensorFlow backend; this module computes the very same numbers on the JAX
and PyTorch backends, written once with `keras.ops`, plus the few
primitives each backend spells its own way: counting and bin counting
(`jnp` / `torch`), PyTorch's own minimum and maximum (Keras's wrappers
branch on their result's type, a graph break), and the test for subnormal
values (by their bits on JAX, whose CPU code reads them as 0; by magnitude
on PyTorch, which keeps them):

* **Statistics** — `summarize_arrays`: the one-pass fold of
  `tensor_statistics` (Chan, Golub & LeVeque's pairwise update in float64,
  row chunks of at most `CHUNK` elements), returning the same `OUTPUTS`
  numbers per tensor, turned into rows by the same `summary_numbers`. What
  it leaves to NumPy is the same too: tensors holding NaN, ±Inf or
  subnormal values (XLA's CPU code, like TensorFlow's, reads those as 0),
  empty, non-numeric or sparse ones.
* **Histograms** — `histogram_arrays`: fixed-width bins computed as
  ``tf.histogram_fixed_width`` computes them (the bin of ``x`` is
  ``int((max(x, low) − low) / ((high − low) / k))``, at most ``k − 1``, in
  float64) and the edges of `writer.histogram_buckets`, so a histogram is
  bin for bin the one TensorFlow gives. NaN and ±Inf are left out.

On JAX every tensor of a log is summarized in one `jax.jit` call (one per
device set), compiled once per model (a shape-keyed cache per sequence of
tensor kinds; the `CALLS_KEPT` sequences used last are kept), with 64-bit
types enabled for the call only. On PyTorch the same code runs eagerly under
`torch.no_grad`, never reading a value back on the host before the end
(`torch._dynamo` traces it without a graph break, tested): each log's
numbers reach the host in one transfer per call.

A JAX array sharded across devices (`keras.distribution`) is not gathered
for them: its statistics are one `jax.jit` over the sharded array, whose
reductions XLA partitions across the devices holding it, and its histogram
is binned shard by shard, on the device each shard lives on, with edges
shared by all shards, the counts added on the host. A fully replicated array
is read from one of its copies.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np
from keras import ops

from .statistics import SATURATION_RULES
from .tensor_statistics import OUTPUTS, summary_numbers
from .traced import CALLS_KEPT, CHUNK

_F64 = "float64"
#: Bits of a float whose magnitude is subnormal: (integer dtype of the same
#: width, mask of the magnitude bits, bits of the smallest normal value).
_SUBNORMAL_BITS = {
    "float32": ("int32", 0x7FFFFFFF, 0x00800000),
    "float64": ("int64", 0x7FFFFFFFFFFFFFFF, 0x0010000000000000),
    "bfloat16": ("int16", 0x7FFF, 0x0080),
}
_NUMERIC_KINDS = ("float", "int", "uint", "bool")
_CALLS: "OrderedDict[tuple, object]" = OrderedDict()


# --- statistics -----------------------------------------------------------------

def summarize_arrays(items: Sequence) -> List[Optional[dict]]:
    """For each ``(values, per_example, activation)``: the dict that
    `tensor_statistics.summarize_tensors` gives on TensorFlow (None for what
    is left to NumPy), computed by the active backend where `values` live."""
    prepared = [_prepare(*item) for item in items]
    groups: Dict[tuple, list] = {}
    for index, call in enumerate(prepared):
        if call is not None:
            groups.setdefault(_placement(call["values"]), []).append(index)
    numbers: Dict[int, np.ndarray] = {}
    for indices in groups.values():
        keys = tuple(prepared[i]["key"] for i in indices)
        results = _run(("summary", keys), lambda: _summaries(keys), [prepared[i]["values"] for i in indices])
        numbers.update(zip(indices, results))
    return [None if call is None else summary_numbers(numbers[index], *call["meta"])
            for index, call in enumerate(prepared)]


def _prepare(values, per_example: bool, activation: Optional[str]) -> Optional[dict]:
    values = _dense(values)
    if values is None or not _numeric(values.dtype) or not int(np.prod(values.shape)):
        return None
    rule = activation if per_example and activation in SATURATION_RULES else None
    shape = tuple(values.shape)
    units = shape[-1] if per_example and len(shape) > 1 else 1
    return {"values": _one_copy(values), "key": (per_example, rule),
            "meta": (int(np.prod(shape)), units, per_example, rule is not None)}


def _summaries(keys):
    def summaries(tensors):
        return ops.stack([_summary(values, *key) for values, key in zip(tensors, keys)])

    return summaries


def _summary(values, per_example: bool, rule: Optional[str]):
    """The `OUTPUTS` numbers of one tensor, as `tensor_statistics` defines them."""
    matrix, units = _as_matrix(values, per_example)
    features = matrix.shape[1]

    def visit(chunk, rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal):
        chunk_values = ops.cast(chunk, _F64)
        chunk_rows = chunk.shape[0]
        chunk_means = _by_column(ops.sum, chunk_values) / chunk_rows  # (ops.mean computes in float32)
        # Chan et al.: merge the chunk's deviations into the running ones.
        delta = chunk_means - means
        merged = rows + chunk_rows
        feature_spread = (feature_spread + ops.sum(ops.square(chunk_values - chunk_means))
                          + ops.sum(ops.square(delta)) * rows * chunk_rows / merged)
        means = means + delta * (chunk_rows / merged)
        chunk_zeros = _count(ops.equal(chunk, 0))
        zeros = zeros + chunk_zeros
        by_unit = ops.reshape(chunk, (-1, units))  # min and max follow from the units'
        unit_low = ops.minimum(unit_low, ops.cast(_by_column(_amin, by_unit), _F64))
        unit_high = ops.maximum(unit_high, ops.cast(_by_column(_amax, by_unit), _F64))
        if rule is not None:
            saturated = saturated + _count(SATURATION_RULES[rule](chunk))
        subnormal = subnormal + _subnormals(chunk, chunk_zeros)
        return rows + chunk_rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal

    zero = ops.zeros((), _F64)
    rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal = _fold(
        matrix, visit, (zero, ops.zeros((features,), _F64), zero, zero, ops.full((units,), np.inf, _F64),
                        ops.full((units,), -np.inf, _F64), zero, zero))
    mean = ops.sum(means) / features
    spread = feature_spread + rows * ops.sum(ops.square(means - mean))
    dead = _count(ops.logical_and(ops.equal(unit_low, 0), ops.equal(unit_high, 0)))
    total = ops.sum(means)  # finite exactly when every element is
    return ops.stack([total, mean, spread, feature_spread, _amin(unit_low), _amax(unit_high),
                      zeros, dead, saturated, subnormal])


def _as_matrix(values, per_example: bool):
    """The (rows, features) view the statistics fold over, and the unit count
    (last axis) of a layer output, as `tensor_statistics` shapes them. A
    weight of two or more axes is viewed as rows of its last axis rather
    than as one column (the numbers it needs do not depend on the view): a
    view that keeps the last axis keeps a kernel sharded along it sharded."""
    if not _is_float(values.dtype):
        values = ops.cast(values, _F64)
    shape = tuple(values.shape)
    if not per_example:
        width = shape[-1] if len(shape) > 1 else 1
        return ops.reshape(values, (-1, width)), width
    if not shape:
        return ops.reshape(values, (1, 1)), 1  # a scalar is one example of one unit
    return ops.reshape(values, (shape[0], -1)), (shape[-1] if len(shape) > 1 else 1)


def _by_column(reduce, matrix):
    """`reduce` over the rows of `matrix`, one value per column (a single
    column reduced as a whole: PyTorch's reductions along axis 0 of an
    (n, 1) matrix are several times slower)."""
    if matrix.shape[1] == 1:
        return ops.reshape(reduce(matrix), (1,))
    return reduce(matrix, axis=0)


def _subnormals(chunk, chunk_zeros):
    """How many elements of a chunk are subnormal, as float64. XLA's CPU code
    reads them as 0, so on JAX they are found by their bits; PyTorch keeps
    them, and they are the elements below the smallest normal magnitude that
    are not 0 (`chunk_zeros` of them are)."""
    dtype = keras.backend.standardize_dtype(chunk.dtype)
    if dtype not in _SUBNORMAL_BITS:
        return ops.zeros((), _F64)  # integers, and float16, which is kept as it is
    bits_type, magnitude, smallest_normal = _SUBNORMAL_BITS[dtype]
    if keras.backend.backend() != "jax":
        tiny = float(np.finfo(dtype if dtype != "bfloat16" else np.float32).tiny)
        return _count(abs(chunk) < tiny) - chunk_zeros  # operators: a Python float stays float64
    bits = ops.bitwise_and(_bits(chunk, bits_type), ops.convert_to_tensor(magnitude, bits_type))
    return _count(ops.logical_and(bits > 0, bits < ops.convert_to_tensor(smallest_normal, bits_type)))


def _count(condition):
    """How many elements meet `condition`, as float64."""
    if keras.backend.backend() == "jax":
        import jax.numpy as jnp

        return jnp.count_nonzero(condition).astype(_F64)
    import torch

    return torch.count_nonzero(condition).to(torch.float64)


# --- histograms -------------------------------------------------------------------

def histogram_arrays(values: Sequence, buckets: int, finite_ranges: Optional[Sequence] = None) -> List[np.ndarray]:
    """The ``[buckets, 3]`` float64 histogram of the finite elements of each
    of `values`, as `writer.histogram_buckets` gives it on TensorFlow.

    `finite_ranges`: for each tensor, its ``(min, max)`` when every value is
    known to be finite (from the statistics), else None.
    """
    ranges = list(finite_ranges) if finite_ranges is not None else [None] * len(values)
    tensors = [_dense(v) for v in values]
    tensors = [t if t is not None else _backend_array(np.asarray(keras.ops.convert_to_numpy(v)))
               for t, v in zip(tensors, values)]
    pieces = [_pieces(t) for t in tensors]
    extremes = [(float(r[0]), float(r[1]), int(np.prod(t.shape))) if r is not None else None
                for r, t in zip(ranges, tensors)]
    missing = [i for i, found in enumerate(extremes) if found is None]
    if missing:
        found = _per_piece("extremes", lambda keys: _extremes_of, [pieces[i] for i in missing], [None] * len(missing))
        for i, parts in zip(missing, found):
            counts = [int(part[2]) for part in parts]
            low = min((part[0] for part, n in zip(parts, counts) if n), default=0.0)
            high = max((part[1] for part, n in zip(parts, counts) if n), default=0.0)
            extremes[i] = (float(low), float(high), sum(counts))
    keys = [(buckets, r is None) for r in ranges]
    binned = _per_piece("bins", _binning, pieces, keys, extremes)
    return [_buckets(low, high, count, np.sum(parts, axis=0), buckets)
            for (low, high, count), parts in zip(extremes, binned)]


def _binning(keys):
    def binning(pieces, lows, highs):
        return ops.stack([_bin_counts(piece, lows[i], highs[i], *key) for i, (piece, key) in
                          enumerate(zip(pieces, keys))])

    return binning


def _extremes_of(pieces):
    return ops.stack([_finite_extremes(piece) for piece in pieces])


def _bin_counts(values, low, high, buckets: int, masked: bool):
    """Counts of the `buckets` fixed-width bins between `low` and `high`, as
    ``tf.histogram_fixed_width`` bins float64 values; with `masked`, of the
    finite values only."""
    column = ops.reshape(values if _is_float(values.dtype) else ops.cast(values, _F64), (-1, 1))
    width = ops.where(high > low, (high - low) / buckets, 1.0)  # a constant tensor's counts are not read

    def visit(chunk, counts):
        chunk_values = ops.cast(ops.reshape(chunk, (-1,)), _F64)
        weights = None
        if masked:
            finite = ops.isfinite(chunk_values)
            chunk_values = ops.where(finite, chunk_values, low)
            weights = ops.cast(finite, _F64)
        bins = ops.cast(ops.minimum((ops.maximum(chunk_values, low) - low) / width, buckets - 1), "int32")
        return (counts + _bincount(bins, weights, buckets),)

    return _fold(column, visit, (ops.zeros((buckets,), _F64),))[0]


def _finite_extremes(values):
    """(min, max, count) of the finite values; (+inf, -inf, 0) without any."""
    column = ops.reshape(values if _is_float(values.dtype) else ops.cast(values, _F64), (-1, 1))

    def visit(chunk, low, high, count):
        chunk_values = ops.cast(chunk, _F64)
        finite = ops.isfinite(chunk_values)
        low = ops.minimum(low, _amin(ops.where(finite, chunk_values, np.inf)))
        high = ops.maximum(high, _amax(ops.where(finite, chunk_values, -np.inf)))
        return low, high, count + _count(finite)

    return ops.stack(_fold(column, visit, (ops.full((), np.inf, _F64), ops.full((), -np.inf, _F64),
                                           ops.zeros((), _F64))))


def _buckets(low: float, high: float, count: int, counts: np.ndarray, buckets: int) -> np.ndarray:
    """The ``[buckets, 3]`` histogram, with the edges and conventions of
    `writer.histogram_buckets` (a constant tensor: every edge at the value,
    all counts in the last bucket; no finite value: all zeros)."""
    if count == 0:
        return np.zeros((buckets, 3))
    if not high > low:
        counts = np.zeros(buckets)
        counts[-1] = count
    fractions = np.arange(buckets + 1, dtype=np.float64) / np.float64(buckets)
    edges = np.concatenate([np.float64(low) + (np.float64(high) - np.float64(low)) * fractions[:-1], [high]])
    return np.stack([edges[:-1], edges[1:], np.asarray(counts, np.float64)], axis=1)


# --- where the tensors live, and running there ---------------------------------------

def _fold(matrix, visit, state):
    """Fold ``visit(chunk, *state) -> state`` over row chunks of the 2-D
    `matrix` of at most `CHUNK` elements (at least one row); static shapes,
    so the chunks are known when the code is traced."""
    rows, width = matrix.shape
    step = max(CHUNK // max(width, 1), 1)
    full, rest = divmod(rows, step)
    if full > 1 and keras.backend.backend() == "jax":  # one loop body, not `full` copies
        state = ops.fori_loop(0, full, lambda i, s: tuple(visit(ops.slice(matrix, (i * step, 0), (step, width)), *s)),
                              tuple(state))
    else:
        for start in range(0, full * step, step):
            state = visit(matrix[start:start + step], *state)
    if rest:
        state = visit(matrix[full * step:], *state)
    return tuple(state)


def _per_piece(kind: str, build, pieces: List[list], keys: list, extremes: Optional[list] = None) -> List[list]:
    """Run `build(keys)` on the pieces of every tensor, one call per device;
    for each tensor the list of its pieces' results."""
    groups: Dict[tuple, list] = {}
    for index, tensor_pieces in enumerate(pieces):
        for piece in tensor_pieces:
            groups.setdefault(_placement(piece), []).append((index, piece))
    results: List[list] = [[] for _ in pieces]
    for members in groups.values():
        group_keys = tuple(keys[index] for index, _ in members)
        arguments = [[piece for _, piece in members]]
        if extremes is not None:
            arguments += [np.array([extremes[index][k] for index, _ in members], np.float64) for k in (0, 1)]
        for (index, _), result in zip(members, _run((kind, group_keys), lambda: build(group_keys), *arguments)):
            results[index].append(result)
    return results


def _run(key: tuple, build, *arguments) -> np.ndarray:
    """``build()(*arguments)`` as NumPy: under `jax.jit` (made once per key
    and kept among the `CALLS_KEPT` used last) on JAX, eagerly without
    autograd on PyTorch."""
    if keras.backend.backend() == "jax":
        import jax

        if key not in _CALLS:
            _CALLS[key] = jax.jit(build())
            if len(_CALLS) > CALLS_KEPT:
                _CALLS.popitem(last=False)
        _CALLS.move_to_end(key)
        with jax.enable_x64(True):
            return np.asarray(_CALLS[key](*arguments))
    import torch

    arguments = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in arguments]
    with torch.no_grad():
        return keras.ops.convert_to_numpy(build()(*arguments))


def _dense(values):
    """`values` as a dense backend tensor (a Keras variable: its value), or
    None for what has no dense buffer (sparse tensors)."""
    if isinstance(values, keras.Variable):
        values = values.value
    if isinstance(values, np.ndarray):
        return _backend_array(values)
    if keras.backend.backend() == "jax":
        import jax

        return values if isinstance(values, jax.Array) else None
    import torch

    return values if isinstance(values, torch.Tensor) and values.layout == torch.strided else None


def _backend_array(values: np.ndarray):
    """A NumPy array as a backend tensor of the same dtype (float64 stays
    float64 on JAX); a non-numeric one is returned as it is."""
    if values.dtype.kind not in "biuf":
        return values
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            return jax.numpy.asarray(values)
    import torch

    return torch.from_numpy(np.ascontiguousarray(values))


def _one_copy(values):
    """A JAX array replicated over several devices: its copy on one of them."""
    if keras.backend.backend() == "jax" and len(values.sharding.device_set) > 1 \
            and values.sharding.is_fully_replicated:
        return values.addressable_shards[0].data
    return values


def _pieces(values) -> list:
    """The parts of `values` to bin: each distinct shard of a sharded JAX
    array (on its own device), else the tensor itself (one copy of it)."""
    values = _one_copy(values)
    if keras.backend.backend() != "jax" or len(values.sharding.device_set) == 1 \
            or not values.is_fully_addressable:  # shards of other processes: one program in all of them
        return [values]
    distinct = {}
    for shard in values.addressable_shards:
        distinct.setdefault(tuple((s.start, s.stop, s.step) for s in shard.index), shard.data)
    return list(distinct.values())


def _placement(values) -> tuple:
    """The devices a tensor lives on (tensors on the same ones share a call)."""
    if keras.backend.backend() == "jax":
        return tuple(sorted(device.id for device in values.sharding.device_set))
    return (str(values.device),)


def _numeric(dtype) -> bool:
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith(_NUMERIC_KINDS)


def _is_float(dtype) -> bool:
    return keras.backend.standardize_dtype(dtype) in ("float16", "bfloat16", "float32", "float64")


def _bits(values, dtype: str):
    """The bits of `values` as integers of the same width."""
    return ops.view(values, dtype)


def _bincount(bins, weights, buckets: int):
    """How many of `bins` (int32, in [0, buckets)) fall in each bin, weighted, as float64."""
    if keras.backend.backend() == "jax":
        import jax.numpy as jnp

        return jnp.bincount(bins, weights=weights, length=buckets).astype(_F64)
    import torch

    counts = torch.zeros(buckets, dtype=torch.float64, device=bins.device)  # a shape known before the data
    return counts.index_add_(0, bins, torch.ones_like(bins, dtype=torch.float64) if weights is None else weights)


def _amin(values, axis=None):
    """The minimum (over `axis`); PyTorch's own, as Keras's wrapper branches on its result's type."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.amin(values) if axis is None else torch.amin(values, dim=axis)
    return ops.min(values, axis=axis)


def _amax(values, axis=None):
    """The maximum (over `axis`), likewise."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.amax(values) if axis is None else torch.amax(values, dim=axis)
    return ops.max(values, axis=axis)


__all__ = ["OUTPUTS", "histogram_arrays", "summarize_arrays"]
