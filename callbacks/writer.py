"""TensorBoard output: bounded-memory histograms, scalars and text.

`histogram_buckets` bins a tensor where it lives, in fixed-width buckets
(``tf.histogram_fixed_width``'s bins; the tensors of a whole log in one
traced call, see `callbacks.traced`). A
tensor larger than `CHUNK` elements is streamed chunk by chunk inside one
`tf.function`, so the extra memory is a few chunk-sized buffers whatever the
tensor's size. (The stock `tf.summary.histogram` builds an elements × buckets
one-hot matrix: 24 GB for 10⁸ values and 30 buckets.) The result is the
histogram plugin's ``[k, 3]`` tensor of (left edge, right edge, count),
written with the plugin's metadata, so TensorBoard's Histograms,
Distributions and Time Series tabs read it as their own.

NaN and ±Inf are counted and left out: the buckets span exactly
[min, max] of the finite values and their counts add up to the number of
finite values. A constant tensor gives TensorBoard's own convention (every
edge at the value, all counts in the last bucket); a tensor with no finite
value gives ``k`` empty buckets.

One log's histograms, scalars and text go into one `Summary` protocol
buffer written by a single op: one eager op per scalar would cost more than
the statistics themselves. On JAX and PyTorch it is written without any
TensorFlow op (see `SummaryWriter`).
"""

from __future__ import annotations

import os
import time
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from .traced import CHUNK, call_all, fold, traced  # noqa: F401 (CHUNK: documented here)

_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name=None, description=None)
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description=None)
_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()
_COMPUTE = tf.float64  # float32 would overflow on (max - min) of huge values


def histogram_buckets(values, buckets: int, finite_range=None):
    """The ``[buckets, 3]`` float64 histogram of the finite elements of `values`.

    `finite_range`: the ``(min, max)`` of `values` when every value is known
    to be finite (from `callbacks.tensor_statistics`, say), which saves the
    pass that finds them. `values` may also be a list of tensors (and
    `finite_range` a list with an entry or None for each): their histograms,
    as a list of ``[buckets, 3]`` arrays, are then computed in one traced call
    (on the JAX and PyTorch backends by `callbacks.array_statistics`, with
    the same bins and edges).
    """
    if isinstance(values, (list, tuple)):
        ranges = finite_range if finite_range is not None else [None] * len(values)
        if keras.backend.backend() in ("jax", "torch"):  # where those tensors live
            from .array_statistics import histogram_arrays

            return histogram_arrays(values, buckets, ranges)
        calls = [_prepare(one, buckets, extremes) for one, extremes in zip(values, ranges)]
        return list(call_all([f for f, _ in calls], [args for _, args in calls]).numpy()) if calls else []
    function, arguments = _prepare(values, buckets, finite_range)
    return function(*arguments)


def _prepare(values, buckets: int, finite_range):
    """The traced histogram function for `values` and its arguments."""
    values = tf.convert_to_tensor(values)
    signature = [tf.TensorSpec(None, values.dtype), tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.float64)]
    function = traced(("histogram", values.dtype), lambda: (_histogram, signature))
    extremes = finite_range if finite_range is not None else (np.nan, np.nan)
    return function, (values, tf.constant(buckets, tf.int32), tf.constant(extremes, tf.float64))


def _histogram(values: tf.Tensor, buckets: tf.Tensor, finite_range: tf.Tensor) -> tf.Tensor:
    """The histogram of `values`; `finite_range` is their (min, max) when all
    are finite, else NaN. One function for both, so that which tensors of a
    log hold NaN (a diverging run) never changes what is traced."""
    return tf.cond(tf.reduce_all(tf.math.is_finite(finite_range)),
                   lambda: _histogram_in_range(values, buckets, finite_range),
                   lambda: _histogram_of_any(values, buckets))


def _histogram_of_any(values: tf.Tensor, buckets: tf.Tensor) -> tf.Tensor:
    """The histogram of the finite values of any tensor."""
    column = _column(values)

    def extremes(chunk, low, high, count):
        def finite_only():
            finite = tf.math.is_finite(chunk)
            return (tf.reduce_min(tf.where(finite, chunk, chunk.dtype.max)),
                    tf.reduce_max(tf.where(finite, chunk, chunk.dtype.min)), tf.math.count_nonzero(finite))

        chunk_low, chunk_high, chunk_count = tf.cond(  # the common case needs no mask
            tf.reduce_all(tf.math.is_finite(chunk)),
            lambda: (tf.reduce_min(chunk), tf.reduce_max(chunk), tf.size(chunk, out_type=tf.int64)),
            finite_only)
        return (tf.minimum(low, tf.cast(chunk_low, _COMPUTE)), tf.maximum(high, tf.cast(chunk_high, _COMPUTE)),
                count + chunk_count)

    low, high, count = fold(column, extremes, (_COMPUTE.max, _COMPUTE.min, tf.constant(0, tf.int64)))

    def bin_finite_counts(chunk, counts):
        # Non-finite values are parked in bin 0 and taken out again.
        values = tf.cast(chunk, _COMPUTE)
        finite = tf.math.is_finite(values)
        binned = _bins(tf.where(finite, values, low), low, high, buckets)
        parked = tf.math.count_nonzero(tf.logical_not(finite))
        return (tf.tensor_scatter_nd_sub(counts + binned, [[0]], [parked]),)

    def counts():  # the common case needs no mask
        return tf.cond(tf.equal(count, tf.size(column, out_type=tf.int64)),
                       lambda: _bin_counts(column, low, high, buckets),
                       lambda: fold(column, bin_finite_counts, (tf.zeros([buckets], tf.int64),))[0])

    return _buckets(low, high, count, buckets, counts)


def _histogram_in_range(values: tf.Tensor, buckets: tf.Tensor, finite_range: tf.Tensor) -> tf.Tensor:
    """The histogram of a tensor whose values are all finite, between the given min and max."""
    column = _column(values)
    low, high = finite_range[0], finite_range[1]
    return _buckets(low, high, tf.size(column, out_type=tf.int64), buckets,
                    lambda: _bin_counts(column, low, high, buckets))


def _column(values: tf.Tensor) -> tf.Tensor:
    return tf.reshape(values if values.dtype.is_floating else tf.cast(values, _COMPUTE), [-1, 1])


def _bin_counts(column: tf.Tensor, low, high, buckets) -> tf.Tensor:
    """Bucket counts of finite values in [low, high], chunk by chunk."""
    def bin_counts(chunk, counts):
        return (counts + _bins_in_range(tf.reshape(tf.cast(chunk, _COMPUTE), [-1]), low, high, buckets),)

    return fold(column, bin_counts, (tf.zeros([buckets], tf.int64),))[0]


def _bins(values: tf.Tensor, low, high, buckets) -> tf.Tensor:
    """The counts ``tf.histogram_fixed_width(values, [low, high], buckets)``
    gives (its own formula: the bin of ``x`` is ``(max(x, low) − low) /
    ((high − low) / buckets)`` truncated, at most ``buckets − 1``), counted by
    `tf.math.bincount`, which counts in parallel where the histogram op
    counts element after element: half the time on a large tensor."""
    width = (high - low) / tf.cast(buckets, _COMPUTE)
    last = tf.cast(buckets - 1, _COMPUTE)
    bins = tf.cast(tf.minimum((tf.maximum(values, low) - low) / width, last), tf.int32)
    return tf.cast(tf.math.bincount(bins, minlength=buckets, maxlength=buckets), tf.int64)


def _bins_in_range(values: tf.Tensor, low, high, buckets) -> tf.Tensor:
    """`_bins` of values known to lie in [low, high], two passes shorter:
    ``max(x, low)`` is ``x`` there, and the one bin past the last (where
    ``x`` is `high`, or rounds to it) is added to the last instead of every
    bin being clipped."""
    width = (high - low) / tf.cast(buckets, _COMPUTE)
    counts = tf.math.bincount(tf.cast((values - low) / width, tf.int32), minlength=buckets + 1,
                              maxlength=buckets + 1)
    return tf.cast(tf.concat([counts[:-2], [counts[-2] + counts[-1]]], axis=0), tf.int64)


def _buckets(low, high, count, buckets, counts) -> tf.Tensor:
    """The ``[buckets, 3]`` histogram from the extremes, the finite count and
    `counts()` (called only when the values spread over more than one point)."""
    zeros = tf.zeros([buckets], tf.int64)
    spread = tf.logical_and(count > 0, high > low)
    counts = tf.cond(spread, counts, lambda: tf.tensor_scatter_nd_update(zeros, [[buckets - 1]], [count]))
    fractions = tf.range(buckets + 1, dtype=tf.float64) / tf.cast(buckets, tf.float64)
    # The last edge is set to the maximum itself, not low + (high - low) * 1.
    edges = tf.concat([low + (high - low) * fractions[:-1], [high]], axis=0)
    edges = tf.where(count > 0, edges, tf.zeros_like(edges))
    return tf.stack([edges[:-1], edges[1:], tf.cast(counts, tf.float64)], axis=1)


def histogram_value(tag: str, values, buckets: int, finite_range=None) -> summary_pb2.Summary.Value:
    """A histogram-plugin summary value of the finite elements of `values`."""
    return histogram_values([tag], [values], buckets, [finite_range])[0]


def histogram_values(tags, values, buckets: int, finite_ranges=None) -> list:
    """Histogram-plugin summary values of the finite elements of each of
    `values`, binned in one traced call (`finite_ranges`: see
    `histogram_buckets`)."""
    return [summary_pb2.Summary.Value(tag=tag, metadata=_HISTOGRAM_METADATA,
                                      tensor=tensor_util.make_tensor_proto(histogram))
            for tag, histogram in zip(tags, histogram_buckets(list(values), buckets, finite_ranges))]


def scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
    """The scalar plugin's summary value (as `scalar_pb` makes it; built
    directly, since a log writes a hundred of them and `scalar_pb` rebuilds
    the metadata and converts through NumPy each time)."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=_SCALAR_SHAPE, float_val=[value])
    return summary_pb2.Summary.Value(tag=tag, metadata=_SCALAR_METADATA, tensor=tensor)


def text_value(tag: str, markdown: str) -> summary_pb2.Summary.Value:
    return text_pb(tag, markdown).value[0]


class SummaryWriter:
    """An event-file writer for one log directory.

    On the TensorFlow backend TensorFlow's own (`tf.summary`); on JAX and
    PyTorch TensorBoard's (`EventFileWriter`, the one `torch.utils.tensorboard`
    uses; the same files), so that logging runs no TensorFlow op there: after
    one, TensorFlow's idle threads keep spinning for seconds, and on a small
    machine PyTorch's own threads then run many times slower (measured:
    a PyTorch CNN's log took 1.6 s instead of 0.08 s).

    Raises `OSError` naming the directory if it cannot be created or written.
    """

    def __init__(self, log_dir):
        self.log_dir = os.fspath(log_dir)
        self._events = None
        try:
            tf.io.gfile.makedirs(self.log_dir)
            if keras.backend.backend() == "tensorflow":
                self._writer = tf.summary.create_file_writer(self.log_dir)
            else:
                self._events = EventFileWriter(self.log_dir, filename_suffix=".v2")
        except (tf.errors.OpError, OSError) as error:
            message = getattr(error, "message", None) or str(error)
            raise OSError(f"cannot write TensorBoard logs to log_dir={self.log_dir!r}: {message}") from error

    def write(self, step: int, values: Iterable[summary_pb2.Summary.Value]) -> None:
        """Write summary values under `step` in one event, and flush.

        On TensorFlow, writes whatever `tf.summary.record_if` condition is in
        force; raises `RuntimeError` if TensorFlow still declines to write.
        """
        summary = summary_pb2.Summary(value=list(values))
        if self._events is not None:
            self._events.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
            self._events.flush()
            return
        # Explicitly on: Keras's TensorBoard(update_freq=N) leaves a
        # `record_if(batch % N == 0)` in force for the whole training.
        with self._writer.as_default(), tf.summary.record_if(True):
            written = tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
        if not bool(written):
            raise RuntimeError(f"TensorFlow declined to write the summaries of step {step} to "
                               f"log_dir={self.log_dir!r}")
        self._writer.flush()

    def close(self) -> None:
        (self._events or self._writer).close()
