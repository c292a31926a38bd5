"""Fan-in and fan-out of Keras kernels, for every kernel layout Keras uses.

Keras stores kernels with the input and output axes last, but not always in
the same order:

=============  ==============================  ===========================
layout         kernel shape                    used by
=============  ==============================  ===========================
``standard``   ``(*spatial, in, out)``         Dense, Conv1D/2D/3D,
                                               SeparableConv pointwise
``transposed`` ``(*spatial, out, in)``         Conv1D/2D/3DTranspose
``depthwise``  ``(*spatial, in, multiplier)``  DepthwiseConv1D/2D,
                                               SeparableConv depthwise
=============  ==============================  ===========================

With ``receptive = prod(spatial)``:

* standard:   ``fan_in = in * receptive``,  ``fan_out = out * receptive``
* transposed: ``fan_in = in * receptive``,  ``fan_out = out * receptive``
  (read from the swapped axes; Keras's built-ins read them unswapped and so
  exchange fan_in and fan_out for transposed convolutions)
* depthwise:  ``fan_in = receptive``, ``fan_out = multiplier * receptive``
  (each output channel sees one input channel; Keras's built-ins count every
  input channel and overstate fan_in by the number of channels)

An ``EinsumDense`` kernel has no fixed layout; its ``equation`` (e.g.
``"ab,bcd->acd"``, also accepted as a `kernel_layout`) says what each kernel
axis is. Its labels that are absent from the output spec are summed over:
they multiply into ``fan_in``. Labels of the output spec that are absent
from the input spec multiply into ``fan_out``. Labels in both (one kernel
slice per position along that axis, like a depthwise kernel's channels)
count in neither. Keras's built-ins read such kernels as convolutions:
``(64, 8, 32)`` of ``"ab,bcd->acd"`` gets ``fan_in = 64 · 8`` instead of 64.

Rank-0 shapes have fans (1, 1) and rank-1 shapes (n, n), as in Keras.
"""

from __future__ import annotations

import math
import re
from typing import Sequence, Tuple

from kinit.validation import check_choice

KERNEL_LAYOUTS = ("standard", "transposed", "depthwise")

#: The equations EinsumDense accepts: ``ab,bc->ac``, ``...ab,bc->...ac``, ``ab...,bc->ac...``.
EINSUM_EQUATION = re.compile(r"(?:\.\.\.)?([a-zA-Z]+)(?:\.\.\.)?,([a-zA-Z]+)->(?:\.\.\.)?([a-zA-Z]+)(?:\.\.\.)?")

FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def compute_fans(shape: Sequence[int], kernel_layout: str = "standard") -> Tuple[int, int]:
    """Return `(fan_in, fan_out)` of a kernel of `shape` in `kernel_layout`.

    `kernel_layout` is one of `KERNEL_LAYOUTS` or an ``EinsumDense`` equation.

    Example:

    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> compute_fans((3, 3, 32, 16), "transposed")   # Conv2DTranspose(32) on 16 channels
    (144, 288)
    >>> compute_fans((3, 3, 16, 2), "depthwise")     # DepthwiseConv2D(depth_multiplier=2)
    (9, 18)
    >>> compute_fans((64, 8, 32), "ab,bcd->acd")     # EinsumDense("ab,bcd->acd", (8, 32))
    (64, 256)
    """
    kernel_layout = check_kernel_layout("compute_fans", kernel_layout)
    shape = tuple(int(d) for d in shape)
    if kernel_layout not in KERNEL_LAYOUTS:
        return einsum_fans(shape, kernel_layout)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    second_last, last = shape[-2], shape[-1]
    if kernel_layout == "standard":
        return second_last * receptive, last * receptive
    if kernel_layout == "transposed":
        return last * receptive, second_last * receptive
    return receptive, last * receptive


def einsum_fans(shape: Tuple[int, ...], equation: str) -> Tuple[int, int]:
    """`(fan_in, fan_out)` of an EinsumDense kernel, read from its equation."""
    inputs, kernel, outputs = EINSUM_EQUATION.fullmatch(equation).groups()
    if len(kernel) != len(shape):
        raise ValueError(
            f"compute_fans: the equation {equation!r} gives the kernel {len(kernel)} axes "
            f"({kernel!r}); received a kernel of shape {shape}."
        )
    fan_in = math.prod(d for label, d in zip(kernel, shape) if label not in outputs)
    fan_out = math.prod(d for label, d in zip(kernel, shape) if label in outputs and label not in inputs)
    return fan_in, fan_out


def check_kernel_layout(owner: str, kernel_layout) -> str:
    """Return `kernel_layout` if it is one of `KERNEL_LAYOUTS` or an EinsumDense equation."""
    if isinstance(kernel_layout, str) and EINSUM_EQUATION.fullmatch(kernel_layout):
        return kernel_layout
    try:
        return check_choice(owner, "kernel_layout", kernel_layout, KERNEL_LAYOUTS)
    except ValueError as error:
        raise ValueError(f"{error} An EinsumDense equation such as 'ab,bcd->acd' is accepted too.") from None


def fan_for_mode(shape: Sequence[int], mode: str, kernel_layout: str = "standard") -> float:
    """The fan that `mode` selects: fan_in, fan_out or their mean, at least 1."""
    fan_in, fan_out = compute_fans(shape, kernel_layout)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    # A zero-sized kernel has no fan; 1 keeps the scale finite, as Keras does.
    return max(1.0, float(fan))
