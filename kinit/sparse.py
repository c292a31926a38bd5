"""Sparse initialization: a fixed fraction of each unit's incoming weights is zero."""

from __future__ import annotations

import math
from typing import Optional

from keras import ops

from kinit.base import RandomInitializer, compute_dtype, register
from kinit.kernel_shapes import flat_matrix_dims
from kinit.validation import check_number


@register
class Sparse(RandomInitializer):
    """Normal weights with a fraction `sparsity` of each output unit's inputs set to zero.

    Formula: for a kernel flattened to ``(n, out)`` (``n = prod(shape[:-1])``,
    the incoming weights of one output unit), each column ``j`` has exactly
    ``z = ⌈sparsity · n⌉`` zeros at positions chosen uniformly at random,
    independently per column, and its other ``n − z`` entries are drawn from
    ``N(0, stddev²)``.

    `sparsity` is the fraction of **zeros**, as in ``torch.nn.init.sparse_``
    (Lua's nninit used the opposite meaning, the fraction kept). torch
    zeroes that fraction of each column of the tensor it is given; kinit
    counts per output unit (a column of Keras's ``(in, out)`` kernel), which
    is Martens's definition: every unit has the same number of non-zero
    incoming connections. ``⌈sparsity · n⌉`` is computed from the rounded
    product, so ``sparsity=0.3`` of ``n=10`` gives 3 zeros (plain floating
    point gives ``⌈3.0000000000000004⌉ = 4``).

    Examples:

    >>> values = kinit.Sparse(sparsity=0.9, stddev=1.0, seed=0)(shape=(100, 10))  # 90 zeros per column
    >>> layer = keras.layers.Dense(64, kernel_initializer=kinit.Sparse(sparsity=0.1, stddev=0.01))

    Args:
        sparsity: fraction of zeros per output unit, in [0, 1].
        stddev: standard deviation of the non-zero weights, > 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Martens 2010, "Deep learning via Hessian-free optimization", §5;
        ``torch.nn.init.sparse_``.
    """

    def __init__(self, sparsity: float = 0.1, stddev: float = 0.01, seed: Optional[int] = None):
        owner = type(self).__name__
        self.sparsity = check_number(owner, "sparsity", sparsity, minimum=0.0, maximum=1.0, strict=False)
        self.stddev = check_number(owner, "stddev", stddev, minimum=0.0)
        super().__init__(seed)

    def zeros_per_unit(self, fan_in: int) -> int:
        """``⌈sparsity · fan_in⌉``, immune to the rounding error of the product."""
        return math.ceil(round(self.sparsity * fan_in, 9))

    def generate(self, shape, dtype):
        fan_in, units = flat_matrix_dims(type(self).__name__, shape)
        compute = compute_dtype(dtype)
        values = self.normal((fan_in, units), compute, 0.0, self.stddev)
        # The rank of a uniform key within its column is a uniform random
        # permutation of 0..fan_in-1 per column: the lowest ranks become zeros.
        keys = self.uniform((fan_in, units), "float32")
        ranks = ops.argsort(ops.argsort(keys, axis=0), axis=0)
        kept = ops.where(ranks >= self.zeros_per_unit(fan_in), values, ops.zeros_like(values))
        return ops.cast(ops.reshape(kept, shape), dtype)
