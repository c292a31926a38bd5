"""The statistics of `callbacks.statistics`, computed where the tensors live.

`callbacks.statistics` defines every number in NumPy. On the TensorFlow
backend this module computes the same numbers for every tensor of a log in
one traced call (`callbacks.traced`): each tensor is summarized where it
lives and only a few numbers per tensor reach the host, in one transfer.

One pass over row chunks (rows: examples of a layer output, elements of a
weight) gives everything. Each unit's min and max (a unit is dead when
both are 0; the tensor's min and max follow), the count of zeros and of
saturated values come directly; the mean and spread by the pairwise
update of Chan, Golub & LeVeque (each chunk's per-feature means and
squared deviations, merged into the running ones), in float64 like the
NumPy functions. From the
per-feature spread ``ssf`` (squared deviations from each feature's mean
across examples) follow ``signal = sqrt(ssf / size)``, the spread around the
overall mean (``ssf + rows × Σ_f (mean_f − mean)²``, hence ``std``) and the
norm (``‖x‖² = spread + size × mean²``): sums of non-negative terms, never
a difference of large numbers.

Only dense tensors whose elements are all finite are summarized here (their
sum says so); one holding NaN or ±Inf (a diverging run), with no element,
not numeric, sparse or ragged is left to the NumPy functions, which count
and leave out the non-finite values. So is one holding subnormal values
(below 1.2e-38 in float32), which TensorFlow's CPU kernels take for 0.

Reference:
    Chan, Golub & LeVeque, "Algorithms for computing the sample variance:
    analysis and recommendations", The American Statistician 37(3), 1983.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from .statistics import SATURATION_RULES
from .traced import call_all, fold, traced

_F64 = tf.float64
#: What a summary function returns per tensor, in this order (see `summary_numbers`).
OUTPUTS = ("total", "mean", "spread", "feature_spread", "min", "max", "zeros", "dead", "saturated",
           "subnormal")
#: TensorFlow's CPU kernels flush subnormal float32, float64 and bfloat16
#: values to zero; they are found by their bits: (integer type of the same
#: width, mask of the magnitude bits, bits of the smallest normal value).
_SUBNORMAL_BITS = {
    tf.float32: (tf.int32, 0x7FFFFFFF, 0x00800000),
    tf.float64: (tf.int64, 0x7FFFFFFFFFFFFFFF, 0x0010000000000000),
    tf.bfloat16: (tf.int16, 0x7FFF, 0x0080),
}

#: Tensors without a dense buffer; left to NumPy, which densifies them.
SPARSE_TYPES = (tf.SparseTensor, tf.RaggedTensor)

#: What to summarize: the values, whether they are a layer output (examples
#: first), and the layer's activation function.
Item = Tuple[object, bool, Optional[str]]


def summarize_tensors(items: Sequence[Item]) -> List[Optional[dict]]:
    """For each ``(values, per_example, activation)``: `summarize(values)`, plus
    `activation_summary(values, activation)` when `per_example` (a layer
    output, examples first), all computed by TensorFlow in one traced call.

    The same keys and definitions as the NumPy functions (see
    `callbacks.statistics`). ``None`` for the tensors left to them: those
    with a NaN or Inf, with no element, or not numeric.
    """
    prepared = [_prepare(*item) for item in items]
    calls = [call for call in prepared if call is not None]
    numbers = iter(call_all([f for f, _, _ in calls], [args for _, args, _ in calls]).numpy() if calls else [])
    return [None if call is None else summary_numbers(next(numbers), *call[2]) for call in prepared]


def _prepare(values, per_example: bool, activation: Optional[str]):
    """(traced function, its arguments, what `summary_numbers` needs), or None."""
    if isinstance(values, SPARSE_TYPES):
        return None
    values = tf.convert_to_tensor(values)
    dtype, shape = values.dtype, values.shape
    if not (dtype.is_floating or dtype.is_integer or dtype == tf.bool) or not shape.num_elements():
        return None
    rule = activation if per_example and activation in SATURATION_RULES else None
    key = (dtype, per_example, rule)
    function = traced(("summary", *key), lambda: (
        lambda values: _summary(values, per_example, rule), [tf.TensorSpec(None, dtype)]))
    units = shape[-1] if per_example and shape.rank > 1 else 1
    return function, (values,), (shape.num_elements(), units, per_example, rule is not None)


def summary_numbers(numbers: np.ndarray, size: int, units: int, per_example: bool,
                    saturation: bool) -> Optional[dict]:
    """The `summarize` (and with `per_example` `activation_summary`) dict of
    one tensor from the `OUTPUTS` numbers its summary function returned;
    None when the tensor must go to NumPy (a NaN or Inf, or subnormals)."""
    numbers = dict(zip(OUTPUTS, numbers.tolist()))
    if not np.isfinite(numbers["total"]) or numbers["subnormal"]:
        return None  # NaN or Inf (left out by NumPy) or subnormals (seen as 0 here): for NumPy
    result = {
        "count": size, "nan": 0, "inf": 0, "mean": numbers["mean"],
        "std": float(np.sqrt(numbers["spread"] / size)), "min": numbers["min"], "max": numbers["max"],
        "norm": float(np.sqrt(numbers["spread"] + size * numbers["mean"] ** 2)),
        "zero_fraction": numbers["zeros"] / size,
    }
    if per_example:
        result.update(signal=float(np.sqrt(numbers["feature_spread"] / size)),
                      dead_fraction=numbers["dead"] / units,
                      saturated_fraction=numbers["saturated"] / size if saturation else None)
    return result


def _as_matrix(values: tf.Tensor, per_example: bool) -> Tuple[tf.Tensor, object]:
    """The (rows, features) float view the statistics fold over, and the unit
    count (last axis) of a layer output; as `activation_summary` shapes them
    (any rank: one traced function serves them all)."""
    if not values.dtype.is_floating:
        values = tf.cast(values, _F64)
    if not per_example:
        return tf.reshape(values, [-1, 1]), 1  # static, as the loop needs
    shape = tf.shape(values, out_type=tf.int64)
    padded = tf.concat([[1], shape, [1]], axis=0)  # a scalar is one example of one unit
    units = tf.where(tf.size(shape) > 1, padded[-2], 1)
    return tf.reshape(values, tf.stack([padded[1], -1])), units


def _summary(values: tf.Tensor, per_example: bool, rule: Optional[str]) -> tf.Tensor:
    matrix, units = _as_matrix(values, per_example)
    features = tf.shape(matrix, out_type=tf.int64)[1]
    zero = tf.zeros([], _F64)

    def visit(chunk, rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal):
        values = tf.cast(chunk, _F64)
        chunk_rows = tf.cast(tf.shape(chunk)[0], _F64)
        chunk_means = tf.reduce_mean(values, axis=0)
        # Chan et al.: merge the chunk's deviations into the running ones.
        delta = chunk_means - means
        merged = rows + chunk_rows
        feature_spread += (tf.reduce_sum(tf.math.squared_difference(values, chunk_means))
                           + tf.reduce_sum(tf.square(delta)) * rows * chunk_rows / merged)
        means += delta * (chunk_rows / merged)
        chunk_zeros, chunk_subnormals = _zeros_and_subnormals(chunk)
        zeros += chunk_zeros
        by_unit = tf.reshape(chunk, [-1, units])  # min and max follow from the units'
        unit_low = tf.minimum(unit_low, tf.cast(tf.reduce_min(by_unit, axis=0), _F64))
        unit_high = tf.maximum(unit_high, tf.cast(tf.reduce_max(by_unit, axis=0), _F64))
        if rule is not None:
            saturated += _count(SATURATION_RULES[rule](chunk))
        subnormal += chunk_subnormals
        return rows + chunk_rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal

    rows, means, feature_spread, zeros, unit_low, unit_high, saturated, subnormal = fold(
        matrix, visit, (zero, tf.zeros([features], _F64), zero, zero, tf.fill([units], tf.constant(np.inf, _F64)),
                        tf.fill([units], tf.constant(-np.inf, _F64)), zero, zero))
    mean = tf.reduce_mean(means)
    spread = feature_spread + rows * tf.reduce_sum(tf.square(means - mean))
    dead = tf.reduce_sum(tf.cast(tf.logical_and(tf.equal(unit_low, 0), tf.equal(unit_high, 0)), _F64))
    total = tf.reduce_sum(means)  # finite exactly when every element is
    return tf.stack([total, mean, spread, feature_spread, tf.reduce_min(unit_low), tf.reduce_max(unit_high),
                     zeros, dead, saturated, subnormal])


def _zeros_and_subnormals(chunk: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """How many elements of a chunk are 0 and how many are subnormal, as
    float64, read off the magnitude bits (TensorFlow's CPU kernels would
    compare a subnormal equal to 0): 0 has none set, a subnormal value has
    fewer than the smallest normal value."""
    if chunk.dtype not in _SUBNORMAL_BITS:
        return _count(tf.equal(chunk, 0)), tf.zeros([], _F64)  # integers, and float16, which TensorFlow keeps
    bits_type, magnitude, smallest_normal = _SUBNORMAL_BITS[chunk.dtype]
    bits = tf.bitwise.bitwise_and(tf.bitcast(chunk, bits_type), tf.constant(magnitude, bits_type))
    zeros = _count(tf.equal(bits, 0))
    return zeros, _count(bits < tf.constant(smallest_normal, bits_type)) - zeros


def _count(condition: tf.Tensor) -> tf.Tensor:
    """How many elements of a chunk meet `condition`, as float64 (summed in
    int32, whose elements are half the size of `count_nonzero`'s int64)."""
    return tf.cast(tf.reduce_sum(tf.cast(condition, tf.int32)), _F64)
