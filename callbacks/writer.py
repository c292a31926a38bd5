"""TensorBoard output: bounded-memory histograms, scalars and text.

`histogram_buckets` bins a tensor where it lives, in fixed-width buckets,
streaming over chunks of `CHUNK` elements inside one `tf.function`, so the
extra memory is a few chunk-sized buffers whatever the tensor's size. (The
stock `tf.summary.histogram` builds an elements × buckets one-hot matrix:
24 GB for 10⁸ values and 30 buckets.) The result is the histogram plugin's
``[k, 3]`` tensor of (left edge, right edge, count), written with
`tf.summary.write` and the plugin's metadata, so TensorBoard's Histograms,
Distributions and Time Series tabs read it as their own.

NaN and ±Inf are counted and left out: the buckets span exactly
[min, max] of the finite values and their counts add up to the number of
finite values. A constant tensor gives TensorBoard's own convention (every
edge at the value, all counts in the last bucket); a tensor with no finite
value gives ``k`` empty buckets.
"""

from __future__ import annotations

import os
from typing import Dict

import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

#: Elements binned per step; bounds the temporary memory of one histogram.
CHUNK = 1 << 20

_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)
_FUNCTIONS: Dict[tf.DType, tf.types.experimental.GenericFunction] = {}


def histogram_buckets(values, buckets: int) -> tf.Tensor:
    """The ``[buckets, 3]`` float64 histogram of the finite elements of `values`."""
    values = tf.convert_to_tensor(values)
    if not values.dtype.is_floating:
        values = tf.cast(values, tf.float64)
    flat = tf.reshape(values, [-1])  # a view, not a copy
    function = _FUNCTIONS.get(flat.dtype)
    if function is None:
        function = _FUNCTIONS[flat.dtype] = tf.function(
            _streamed_histogram,
            input_signature=[tf.TensorSpec([None], flat.dtype), tf.TensorSpec([], tf.int32)],
        )
    return function(flat, tf.constant(buckets, tf.int32))


def _streamed_histogram(flat: tf.Tensor, buckets: tf.Tensor) -> tf.Tensor:
    compute = tf.float64  # float32 would overflow on (max - min) of huge values
    size = tf.size(flat, out_type=tf.int64)

    def chunks(body, initial):
        """Fold `body(chunk, finite, state)` over the chunks, one at a time."""
        def step(start, *state):
            length = tf.minimum(tf.constant(CHUNK, tf.int64), size - start)
            chunk = tf.cast(tf.slice(flat, [start], [length]), compute)
            return (start + length, *body(chunk, tf.math.is_finite(chunk), *state))

        result = tf.while_loop(lambda start, *_: start < size, step,
                               (tf.constant(0, tf.int64), *initial), parallel_iterations=1)
        return result[1:]

    def extremes(chunk, finite, low, high, count):
        return (tf.minimum(low, tf.reduce_min(tf.where(finite, chunk, compute.max))),
                tf.maximum(high, tf.reduce_max(tf.where(finite, chunk, compute.min))),
                count + tf.math.count_nonzero(finite))

    low, high, count = chunks(extremes, (compute.max, compute.min, tf.constant(0, tf.int64)))

    def bin_counts(chunk, finite, counts):
        # Non-finite values are parked in bucket 0 and taken out again.
        binned = tf.histogram_fixed_width(tf.where(finite, chunk, low), [low, high], buckets, dtype=tf.int64)
        parked = tf.math.count_nonzero(tf.logical_not(finite))
        return (tf.tensor_scatter_nd_sub(counts + binned, [[0]], [parked]),)

    zeros = tf.zeros([buckets], tf.int64)
    spread = tf.logical_and(count > 0, high > low)
    counts = tf.cond(spread, lambda: chunks(bin_counts, (zeros,))[0],
                     lambda: tf.tensor_scatter_nd_update(zeros, [[buckets - 1]], [count]))
    fractions = tf.range(buckets + 1, dtype=tf.float64) / tf.cast(buckets, tf.float64)
    # The last edge is set to the maximum itself, not low + (high - low) * 1.
    edges = tf.concat([low + (high - low) * fractions[:-1], [high]], axis=0)
    edges = tf.where(count > 0, edges, tf.zeros_like(edges))
    return tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)


class SummaryWriter:
    """An event-file writer for one log directory.

    Raises `OSError` naming the directory if it cannot be created or written.
    """

    def __init__(self, log_dir: str):
        self.log_dir = os.fspath(log_dir)
        try:
            tf.io.gfile.makedirs(self.log_dir)
            self._writer = tf.summary.create_file_writer(self.log_dir)
        except (tf.errors.OpError, OSError) as error:
            message = getattr(error, "message", None) or str(error)
            raise OSError(f"cannot write TensorBoard logs to log_dir={self.log_dir!r}: {message}") from error

    def histogram(self, tag: str, values, step: int, buckets: int) -> None:
        with self._writer.as_default():
            tf.summary.write(tag, histogram_buckets(values, buckets), step=step,
                             metadata=_HISTOGRAM_METADATA)

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self._writer.as_default():
            tf.summary.scalar(tag, value, step=step)

    def text(self, tag: str, markdown: str, step: int) -> None:
        with self._writer.as_default():
            tf.summary.text(tag, markdown, step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
