"""ZerO: deterministic initialization with only zeros, ones and Hadamard matrices."""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from kinit.base import KinitInitializer, register
from kinit.kernel_shapes import dense_or_conv_dims, place_at_centre


@register
class ZerO(KinitInitializer):
    """ZerO: partial identity, or a normalized Hadamard matrix when the layer widens.

    Formula, for a Dense kernel ``(in, out)``:

    * ``out <= in``: ``W = I*``, the partial identity (``W[i, i] = 1``);
    * ``out > in``: ``W[i, j] = 2^(−m/2) · (−1)^popcount(i AND j)`` for
      ``i < in``, ``j < out``, with ``m = ⌈log₂ out⌉``: the first ``in`` rows
      and ``out`` columns of the Sylvester Hadamard matrix ``H_m`` of order
      ``2^m``, normalized so that ``H_m / 2^(m/2)`` is orthogonal.

    A convolution kernel ``(*spatial, in, out)`` gets that matrix at the tap
    ``padding="same"`` aligns with the output (the centre of odd kernels) and
    zeros elsewhere. No randomness and no arguments: there is no seed.

    A stack of ZerO Dense layers (no bias) whose width stays equal, or widens
    to powers of two, preserves the norm of its input exactly: ``I`` and
    ``W = H_m[:in] / 2^(m/2)`` (``out = 2^m``) both have orthonormal rows.
    Narrowing layers drop coordinates; widening to a non-power of two
    keeps only part of each Hadamard row, which is not norm-preserving.

    The normalization ``2^(−m/2)`` is the authors' released code; Algorithm 1
    as printed in the paper writes ``c = 2^(−(m−1)/2)``, √2 larger.

    Examples:

    >>> values = kinit.ZerO()(shape=(2, 4))  # [[1, 1, 1, 1], [1, -1, 1, -1]] / 2
    >>> layer = keras.layers.Dense(256, kernel_initializer=kinit.ZerO())

    Reference:
        Zhao et al. 2022, "ZerO Initialization: Initializing Neural Networks
        with only Zeros and Ones" (TMLR), Algorithms 1 and 2.
    """

    def generate(self, shape, dtype):
        spatial, fan_in, fan_out = dense_or_conv_dims(type(self).__name__, shape)
        matrix = ops.convert_to_tensor(zero_matrix(fan_in, fan_out), dtype=dtype)
        return place_at_centre(matrix, spatial)


def zero_matrix(fan_in: int, fan_out: int) -> np.ndarray:
    """The ZerO ``(in, out)`` matrix, in float64."""
    if fan_out <= fan_in:
        return np.eye(fan_in, fan_out)
    order = math.ceil(math.log2(fan_out))
    return hadamard_block(fan_in, fan_out) / 2.0 ** (order / 2.0)


def hadamard_block(rows: int, cols: int) -> np.ndarray:
    """``H[:rows, :cols]`` of a Sylvester Hadamard matrix: ``(−1)^popcount(i AND j)``."""
    common = np.bitwise_and.outer(np.arange(rows), np.arange(cols))
    parity = np.zeros_like(common)
    while common.any():
        parity ^= common & 1
        common >>= 1
    return 1.0 - 2.0 * parity
