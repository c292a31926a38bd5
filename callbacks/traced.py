"""Traced TensorFlow plumbing shared by the histograms and the statistics.

* `fold` visits a tensor chunk by chunk inside a traced function. The tensor
  is viewed as a matrix whose rows are never split (an example's features,
  or single elements), in row chunks of at most `CHUNK` elements (at least
  one row), so the temporary memory of a summary is a few chunk-sized
  buffers whatever the tensor's size.
* `traced` makes a shape-agnostic function, traced once per process for
  every tensor of its kind; `call_all` runs many such calls (every tensor
  of one log) as one traced call, made once per sequence of functions, that
  is once per model. A call from Python costs about 0.3 ms, more than
  summarizing a small tensor, and in one call TensorFlow works on several
  tensors at a time. The inner functions stay separate graph functions (not
  inlined): an outer function then takes milliseconds to trace, and its
  first call (where TensorFlow prepares every inner call) a few tenths of a
  second, half what the same graph inlined takes. The outer functions of
  the `CALLS_KEPT` sequences used last are kept (an LRU cache): each holds
  a graph of a few megabytes, and a process that builds model after model
  would otherwise keep them all.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Dict, Hashable, List, Sequence, Tuple

import tensorflow as tf

#: Elements visited per step; bounds the temporary memory of one summary.
CHUNK = 1 << 20
#: Outer traced calls kept: two per model (statistics, histograms), for 8 models.
CALLS_KEPT = 16

Function = tf.types.experimental.PolymorphicFunction
_TRACED: Dict[Hashable, Function] = {}
_CALLS: "OrderedDict[Tuple, tf.types.experimental.ConcreteFunction]" = OrderedDict()


def fold(matrix: tf.Tensor, body: Callable, initial: Sequence) -> list:
    """Fold ``body(chunk, *state) -> state`` over row chunks of the 2-D `matrix`."""
    shape = tf.shape(matrix, out_type=tf.int64)
    rows, width = shape[0], tf.maximum(shape[1], 1)
    step = tf.maximum(tf.constant(CHUNK, tf.int64) // width, 1)
    flat = tf.reshape(matrix, [-1])  # slices of the flat view are contiguous, cheap

    def visit(start, *state):
        length = tf.minimum(step, rows - start)
        chunk = tf.reshape(tf.slice(flat, [start * width], [length * width]), tf.stack([length, shape[1]]))
        chunk.set_shape([None, matrix.shape[1]])  # keep what is known of the width
        return (start + length, *body(chunk, *state))

    result = tf.while_loop(lambda start, *_: start < rows, visit, (tf.constant(0, tf.int64), *initial),
                           parallel_iterations=1)
    return list(result[1:])


def traced(key: Hashable, build: Callable[[], Tuple[Callable, List[tf.TensorSpec]]]) -> Function:
    """The traced function of `key`, made once from ``build() -> (python
    function, input signature)``."""
    if key not in _TRACED:
        function, signature = build()
        _TRACED[key] = tf.function(function, input_signature=signature, autograph=False,
                                   experimental_attributes={"_noinline": True})
    return _TRACED[key]


def call_all(functions: Sequence[Function], arguments: Sequence[Sequence[tf.Tensor]]) -> tf.Tensor:
    """``tf.stack([f(*args) for f, args in zip(functions, arguments)])`` as one
    traced call, fetched to the host as one tensor (functions made by `traced`,
    returning tensors of one shape and dtype)."""
    key = tuple(id(function) for function in functions)  # `traced` keeps each one alive
    if key not in _CALLS:
        def call(arguments):
            return tf.stack([function(*args) for function, args in zip(functions, arguments)])

        signature = [list(function.input_signature) for function in functions]
        # The concrete function: calling it skips the polymorphic dispatch.
        _CALLS[key] = tf.function(call, input_signature=[signature], autograph=False).get_concrete_function()
        if len(_CALLS) > CALLS_KEPT:
            _CALLS.popitem(last=False)  # the one used longest ago
    _CALLS.move_to_end(key)
    return _CALLS[key]([list(args) for args in arguments])
