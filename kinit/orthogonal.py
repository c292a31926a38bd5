"""Orthogonal schemes: dense orthogonal matrices and orthogonal convolutions.

All of them start from `haar_orthogonal`, random matrices with orthonormal
rows or columns drawn uniformly (Haar measure), and differ in where they put
them: the whole flattened kernel (`Orthogonal`), the centre tap of a
convolution (`DeltaOrthogonal`), or a product of orthogonal 2-tap filters
that makes the whole circular convolution orthogonal (`ConvolutionOrthogonal`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from keras import ops

from kinit.base import RandomInitializer, compute_dtype, register
from kinit.kernel_shapes import (
    conv_dims,
    flat_matrix_dims,
    place_at_centre,
    require_in_at_most_out,
    shape_error,
)
from kinit.validation import check_number


def haar_orthogonal(
    initializer: RandomInitializer, rows: int, cols: int, dtype: str, batch: Tuple[int, ...] = ()
):
    """Random ``rows × cols`` matrices, orthonormal along the shorter side.

    Columns are orthonormal when ``rows >= cols`` (``QᵀQ = I``), rows when
    ``rows < cols`` (``QQᵀ = I``); `batch` leading axes give independent
    matrices. Method: QR of a standard Gaussian matrix, then each column of Q
    times the sign of the matching diagonal entry of R. Without that step Q
    inherits the sign convention of the QR algorithm and is not uniformly
    distributed; with it, Q is Haar distributed (Mezzadri 2007).

    Draws from `initializer`'s seed stream and computes in `dtype`.
    """
    tall, short = max(rows, cols), min(rows, cols)
    gaussian = initializer.normal((*batch, tall, short), dtype)
    q, r = ops.qr(gaussian)
    diagonal = ops.diagonal(r, axis1=-2, axis2=-1)
    signs = ops.where(diagonal < 0, -ops.ones_like(diagonal), ops.ones_like(diagonal))
    q = q * ops.expand_dims(signs, -2)
    return q if rows >= cols else ops.swapaxes(q, -1, -2)


class OrthogonalBase(RandomInitializer):
    """Shared constructor of the gain-scaled orthogonal schemes."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None):
        self.gain = check_number(type(self).__name__, "gain", gain, minimum=0.0)
        super().__init__(seed)

    def generate(self, shape, dtype):
        compute = compute_dtype(dtype)
        return ops.cast(self.gain * self.orthogonal_kernel(shape, compute), dtype)

    def orthogonal_kernel(self, shape, dtype):
        """The unit-gain kernel of `shape`, computed in `dtype`."""
        raise NotImplementedError

    def conv_isometry_dims(self, shape) -> Tuple[Tuple[int, ...], int, int]:
        """``(spatial, in, out)`` of a conv kernel that can map ``in`` isometrically."""
        owner = type(self).__name__
        spatial, fan_in, fan_out = conv_dims(owner, shape)
        require_in_at_most_out(owner, shape, fan_in, fan_out)
        return spatial, fan_in, fan_out


@register
class Orthogonal(OrthogonalBase):
    """A random orthogonal matrix, for kernels of any rank >= 2.

    Formula: the kernel, flattened to ``W`` of shape
    ``(prod(shape[:-1]), shape[-1])``, satisfies ``WᵀW = gain²·I`` when it
    has at least as many rows as columns, and ``WWᵀ = gain²·I`` otherwise.
    ``W`` is uniformly (Haar) distributed: the QR factor of a Gaussian matrix
    with the signs of ``diag(R)`` folded into ``Q``.

    Unlike Keras's `Orthogonal`, every call of a seeded instance draws a new
    matrix (see "Seeds" in the README) and float16 / bfloat16 kernels are
    computed in float32, then cast.

    Examples:

    >>> # Standalone usage:
    >>> initializer = kinit.Orthogonal(gain=1.0, seed=0)
    >>> values = initializer(shape=(4, 4))

    >>> # Usage in a Keras layer:
    >>> layer = keras.layers.Dense(64, kernel_initializer=kinit.Orthogonal())
    >>> rnn = keras.layers.SimpleRNN(32, recurrent_initializer=kinit.Orthogonal(seed=1))

    Args:
        gain: multiplies the orthogonal matrix, > 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear
        dynamics of learning in deep linear neural networks"; Mezzadri 2007,
        "How to generate random matrices from the classical compact groups".
    """

    def orthogonal_kernel(self, shape, dtype):
        rows, cols = flat_matrix_dims(type(self).__name__, shape)
        return ops.reshape(haar_orthogonal(self, rows, cols, dtype), shape)


@register
class DeltaOrthogonal(OrthogonalBase):
    """An orthogonal matrix at the centre tap of a convolution kernel, zeros elsewhere.

    Formula: for a kernel of shape ``(*spatial, in, out)`` with odd spatial
    sizes and ``in <= out``, ``W[centre] = gain·H`` with ``HHᵀ = I`` (``H``
    of shape ``in × out``, Haar distributed) and ``W[t] = 0`` at every other
    tap ``t``. The convolution then maps the input vector at the position
    the centre tap reads to ``gain·x·H``: every output position has exactly
    ``gain`` times the norm of that input position, for any padding, stride
    or dilation. With ``padding="same"`` and stride 1 every input position
    has its output position, so the layer scales the norm of any input by
    exactly ``gain``, whatever the image size. ``padding="valid"`` has no
    output for the ``(k − 1) / 2`` border positions on each side, and a
    stride skips positions: the layer's output norm is then ``gain`` times
    the norm of the positions it reads only.

    Examples:

    >>> values = kinit.DeltaOrthogonal(seed=0)(shape=(3, 3, 16, 32))
    >>> layer = keras.layers.Conv2D(32, 3, padding="same", kernel_initializer=kinit.DeltaOrthogonal())

    Args:
        gain: multiplies the centre matrix, > 0 (√2 for ReLU networks).
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Xiao et al. 2018, "Dynamical Isometry and a Mean Field Theory of CNNs:
        How to Train 10,000-Layer Vanilla Convolutional Neural Networks", §2.4.
    """

    def orthogonal_kernel(self, shape, dtype):
        spatial, fan_in, fan_out = self.conv_isometry_dims(shape)
        if any(k % 2 == 0 for k in spatial):
            raise shape_error(
                type(self).__name__, shape, "every spatial size must be odd, so that the kernel has a centre tap"
            )
        return place_at_centre(haar_orthogonal(self, fan_in, fan_out, dtype), spatial)


@register
class ConvolutionOrthogonal(OrthogonalBase):
    """A convolution kernel whose circular convolution is an orthogonal map.

    Formula (Xiao et al. 2018, Algorithm 1, for 1, 2 or 3 spatial axes and
    any kernel sizes): write a kernel as the polynomial
    ``W(z) = Σ_t W[t] z^t`` in one variable per spatial axis. Then

        W(z) = gain · H · Π_j (P_j + (I − P_j) z_{a(j)})

    where ``H`` (``in × out``) has orthonormal rows, each ``P_j`` is a random
    symmetric projection ``Q diag(m) Qᵀ`` (``Q`` Haar orthogonal ``out × out``,
    ``m`` i.i.d. fair 0/1 entries), and the product has ``k_a − 1`` factors
    for spatial axis ``a`` of size ``k_a`` (taken one axis after the other,
    step by step, as in the paper). Each factor is unitary on the unit
    circle, so ``W(ω)W(ω)* = gain²·I`` at every frequency: convolution with
    circular (wrap) padding maps any input of any spatial size to an output
    of exactly ``gain`` times its norm. With zero padding it is orthogonal
    away from the borders only.

    Examples:

    >>> values = kinit.ConvolutionOrthogonal(seed=0)(shape=(3, 3, 16, 32))
    >>> layer = keras.layers.Conv2D(32, 3, kernel_initializer=kinit.ConvolutionOrthogonal())

    Args:
        gain: scales the map's norm, > 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Xiao et al. 2018, "Dynamical Isometry and a Mean Field Theory of CNNs:
        How to Train 10,000-Layer Vanilla Convolutional Neural Networks",
        Algorithm 1 (TensorFlow 1's ``ConvolutionOrthogonal1D/2D/3D``, which
        needed equal spatial sizes).
    """

    def orthogonal_kernel(self, shape, dtype):
        spatial, fan_in, fan_out = self.conv_isometry_dims(shape)
        axes = factor_axes(spatial)
        # One batched QR: the first matrix gives H, the others the projections.
        q = haar_orthogonal(self, fan_out, fan_out, dtype, batch=(len(axes) + 1,))
        # H at tap 0 of a full-size kernel; each factor below multiplies by
        # P + (I − P)·z: the taps times P stay, the taps times (I − P) move
        # one step along the factor's axis. The k − 1 steps along an axis of
        # size k never wrap around, so the roll is an exact shift.
        kernel = ops.pad(
            ops.reshape(q[0, :fan_in], (1,) * len(spatial) + (fan_in, fan_out)),
            [(0, k - 1) for k in spatial] + [(0, 0), (0, 0)],
        )
        if not axes:
            return kernel
        masks = ops.cast(self.uniform((len(axes), 1, fan_out), dtype) < 0.5, dtype)
        projections = ops.matmul(q[1:] * masks, ops.swapaxes(q[1:], -1, -2))
        for axis, projection in zip(axes, ops.unstack(projections)):
            stay = ops.matmul(kernel, projection)
            kernel = stay + ops.roll(kernel - stay, 1, axis=axis)
        return kernel


def factor_axes(spatial: Sequence[int]):
    """The spatial axis of each 2-tap factor: ``k − 1`` per axis, interleaved."""
    steps = max(spatial) - 1
    return [axis for step in range(steps) for axis, k in enumerate(spatial) if step < k - 1]
