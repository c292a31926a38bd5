"""Shape rules of the structured schemes: what each kernel rank means.

Keras stores kernels as ``(*spatial, in, out)``: Dense kernels have no
spatial axes, Conv1D/2D/3D kernels have one to three. The structured schemes
build matrices (``in × out``, or the flattened ``prod(shape[:-1]) × out``)
and place them in such kernels; the helpers here read the shapes, refuse the
ones a scheme cannot fill with a message naming the shape and the
requirement, and do the placing. Shapes with a zero dimension never reach
them: `KinitInitializer.__call__` returns an empty tensor for those.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from keras import ops

#: Ranks of Conv1D, Conv2D and Conv3D kernels.
CONV_RANKS = (3, 4, 5)


def shape_error(owner: str, shape: Sequence[int], requirement: str) -> ValueError:
    """The ValueError for a shape `owner` cannot fill, saying what it needs."""
    return ValueError(f"{owner}: cannot fill a kernel of shape {tuple(shape)}; {requirement}.")


def flat_matrix_dims(owner: str, shape: Sequence[int]) -> Tuple[int, int]:
    """``(prod(shape[:-1]), shape[-1])``: the kernel as (inputs of a unit, units)."""
    if len(shape) < 2:
        raise shape_error(owner, shape, "it needs a kernel of rank >= 2 such as (in, out)")
    return math.prod(shape[:-1]), shape[-1]


def matrix_dims(owner: str, shape: Sequence[int]) -> Tuple[int, int]:
    """``(in, out)`` of a rank-2 (Dense) kernel."""
    if len(shape) != 2:
        raise shape_error(owner, shape, "it needs a rank-2 kernel (in, out)")
    return shape[0], shape[1]


def conv_dims(owner: str, shape: Sequence[int]) -> Tuple[Tuple[int, ...], int, int]:
    """``(spatial, in, out)`` of a Conv1D/2D/3D kernel ``(*spatial, in, out)``."""
    if len(shape) not in CONV_RANKS:
        raise shape_error(
            owner, shape, "it needs a convolution kernel (*spatial, in, out) of rank 3, 4 or 5"
        )
    return tuple(shape[:-2]), shape[-2], shape[-1]


def dense_or_conv_dims(owner: str, shape: Sequence[int]) -> Tuple[Tuple[int, ...], int, int]:
    """``(spatial, in, out)`` of a Dense (``spatial == ()``) or Conv1D/2D/3D kernel."""
    if len(shape) != 2 and len(shape) not in CONV_RANKS:
        raise shape_error(
            owner,
            shape,
            "it needs a Dense kernel (in, out) or a convolution kernel (*spatial, in, out) "
            "of rank 3, 4 or 5",
        )
    return tuple(shape[:-2]), shape[-2], shape[-1]


def require_in_at_most_out(owner: str, shape: Sequence[int], fan_in: int, fan_out: int) -> None:
    if fan_in > fan_out:
        raise shape_error(
            owner,
            shape,
            f"it needs in <= out (an isometry cannot map {fan_in} input channels "
            f"into {fan_out} output channels)",
        )


def centre_taps(spatial: Sequence[int]) -> Tuple[int, ...]:
    """The tap that ``padding="same"`` aligns with the output position.

    Keras pads ``(k - 1) // 2`` before and ``k // 2`` after on every backend,
    so this is the centre of odd kernels and the left-of-centre tap of even
    ones (torch's ``dirac_`` uses ``k // 2``, right for its symmetric padding).
    """
    return tuple((k - 1) // 2 for k in spatial)


def place_at_centre(matrix, spatial: Sequence[int]):
    """A kernel ``(*spatial, in, out)`` that is `matrix` at the centre tap, 0 elsewhere."""
    spatial = tuple(spatial)
    fan_in, fan_out = (int(d) for d in matrix.shape)
    kernel = ops.reshape(matrix, (1,) * len(spatial) + (fan_in, fan_out))
    padding = [(t, k - 1 - t) for t, k in zip(centre_taps(spatial), spatial)]
    return ops.pad(kernel, padding + [(0, 0), (0, 0)])
