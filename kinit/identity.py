"""Identity-like schemes: layers that start as (partial) identity maps."""

from __future__ import annotations

from keras import ops

from kinit.base import KinitInitializer, register
from kinit.kernel_shapes import conv_dims, matrix_dims, place_at_centre, shape_error
from kinit.validation import check_int, check_number


@register
class Identity(KinitInitializer):
    """The (partial) identity matrix times `gain`, for Dense kernels.

    Formula: ``W[i, j] = gain`` if ``i == j`` else ``0``, for a kernel of
    shape ``(in, out)``. A square kernel makes ``Dense(use_bias=False)``
    return ``gain · x``; a wide one (``in < out``) returns ``gain · x``
    followed by ``out − in`` zeros; a tall one keeps the first ``out``
    inputs.

    Examples:

    >>> values = kinit.Identity()(shape=(3, 3))
    >>> layer = keras.layers.Dense(64, kernel_initializer=kinit.Identity(gain=0.5))

    Args:
        gain: the diagonal value, > 0.

    Reference:
        Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent
        Networks of Rectified Linear Units"; Keras `Identity`,
        ``torch.nn.init.eye_``.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = check_number(type(self).__name__, "gain", gain, minimum=0.0)

    def generate(self, shape, dtype):
        fan_in, fan_out = matrix_dims(type(self).__name__, shape)
        return ops.cast(self.gain * ops.eye(fan_in, fan_out, dtype="float32"), dtype)


@register
class Dirac(KinitInitializer):
    """A convolution kernel that copies its input channels: identity with same padding.

    Formula: for a kernel ``(*spatial, in, out)`` and ``g = groups``, with
    ``p = out / g`` output channels per group, ``W[c, i, k·p + i] = 1`` for
    every group ``k < g`` and channel ``i < min(p, in)``, where ``c`` is the
    tap that ``padding="same"`` aligns with the output (``(size − 1) // 2``
    on every axis, the centre of odd kernels), and ``W = 0`` elsewhere.

    So ``Conv(out, size, padding="same", use_bias=False)`` returns
    ``y[..., k·p + i] = x[..., i]``: with ``groups=1`` and ``in == out`` the
    input itself. With a grouped convolution, ``Conv(..., groups=g)`` (kernel
    ``(*spatial, in / g, out)``) and ``Dirac(groups=g)``, group ``k``'s
    output channel ``k·p + i`` copies that group's input channel
    ``k·(in/g) + i``: the identity again when ``in == out``. As
    ``torch.nn.init.dirac_``, which counts groups the same way.

    Examples:

    >>> values = kinit.Dirac()(shape=(3, 3, 8, 8))
    >>> layer = keras.layers.Conv2D(8, 3, padding="same", kernel_initializer=kinit.Dirac())
    >>> grouped = keras.layers.Conv2D(8, 3, padding="same", groups=2, kernel_initializer=kinit.Dirac(groups=2))

    Args:
        groups: the number of groups the output channels divide into, >= 1.

    Reference:
        Zagoruyko & Komodakis 2017, "DiracNets: Training Very Deep Neural
        Networks Without Skip-Connections"; ``torch.nn.init.dirac_``.
    """

    def __init__(self, groups: int = 1):
        self.groups = check_int(type(self).__name__, "groups", groups, minimum=1)

    def generate(self, shape, dtype):
        owner = type(self).__name__
        spatial, fan_in, fan_out = conv_dims(owner, shape)
        if fan_out % self.groups:
            raise shape_error(
                owner, shape, f"its output channels ({fan_out}) must divide into groups={self.groups}"
            )
        per_group = fan_out // self.groups
        matrix = ops.tile(ops.eye(fan_in, per_group, dtype=dtype), (1, self.groups))
        return place_at_centre(matrix, spatial)
