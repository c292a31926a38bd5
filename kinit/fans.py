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

Rank-0 shapes have fans (1, 1) and rank-1 shapes (n, n), as in Keras.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

from kinit.validation import check_choice

KERNEL_LAYOUTS = ("standard", "transposed", "depthwise")

FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def compute_fans(shape: Sequence[int], kernel_layout: str = "standard") -> Tuple[int, int]:
    """Return `(fan_in, fan_out)` of a kernel of `shape` in `kernel_layout`.

    Example:

    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> compute_fans((3, 3, 32, 16), "transposed")   # Conv2DTranspose(32) on 16 channels
    (144, 288)
    >>> compute_fans((3, 3, 16, 2), "depthwise")     # DepthwiseConv2D(depth_multiplier=2)
    (9, 18)
    """
    check_choice("compute_fans", "kernel_layout", kernel_layout, KERNEL_LAYOUTS)
    shape = tuple(int(d) for d in shape)
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


def fan_for_mode(shape: Sequence[int], mode: str, kernel_layout: str = "standard") -> float:
    """The fan that `mode` selects: fan_in, fan_out or their mean, at least 1."""
    fan_in, fan_out = compute_fans(shape, kernel_layout)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    # A zero-sized kernel has no fan; 1 keeps the scale finite, as Keras does.
    return max(1.0, float(fan))
