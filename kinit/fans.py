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
count in neither. Read in the standard layout, as a convolution,
``(64, 8, 32)`` of ``"ab,bcd->acd"`` would get ``fan_in = 64 · 8`` instead of 64.

Keras >= 3.15's ``EinsumDense`` hands the kernel's axes over: its
``build`` clones a `keras.initializers.VarianceScaling` (kinit's fan-based
schemes are ones) with ``input_axes`` (the contracted kernel axes) and
``output_axes`` (the kernel axes of the output spec). Given axes decide the
fans, whatever the named layout says, so one initializer passed to a
``MultiHeadAttention`` is right for the query, key, value and output
projections, whose equations differ. The axes cannot say which output axes
are also input axes; an equation `kernel_layout` that names exactly the
given axes adds that, and its shared labels again count in neither fan.

Rank-0 shapes have fans (1, 1) and rank-1 shapes (n, n), as in Keras.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import List, Optional, Sequence, Tuple

from kinit.validation import check_choice

KERNEL_LAYOUTS = ("standard", "transposed", "depthwise")

#: The equations EinsumDense accepts: ``ab,bc->ac``, ``...ab,bc->...ac``, ``ab...,bc->ac...``.
EINSUM_EQUATION = re.compile(r"(?:\.\.\.)?([a-zA-Z]+)(?:\.\.\.)?,([a-zA-Z]+)->(?:\.\.\.)?([a-zA-Z]+)(?:\.\.\.)?")

FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def compute_fans(
    shape: Sequence[int],
    kernel_layout: str = "standard",
    input_axes: Optional[Sequence[int]] = None,
    output_axes: Optional[Sequence[int]] = None,
) -> Tuple[int, int]:
    """Return `(fan_in, fan_out)` of a kernel of `shape` in `kernel_layout`.

    `kernel_layout` is one of `KERNEL_LAYOUTS` or an ``EinsumDense`` equation.
    `input_axes` and `output_axes` (given together) are the kernel axes of
    the inputs and outputs, as EinsumDense hands them over; they take
    precedence over `kernel_layout` (see the module docstring).

    Example:

    >>> compute_fans((3, 3, 16, 32))
    (144, 288)
    >>> compute_fans((3, 3, 32, 16), "transposed")   # Conv2DTranspose(32) on 16 channels
    (144, 288)
    >>> compute_fans((3, 3, 16, 2), "depthwise")     # DepthwiseConv2D(depth_multiplier=2)
    (9, 18)
    >>> compute_fans((64, 8, 32), "ab,bcd->acd")     # EinsumDense("ab,bcd->acd", (8, 32))
    (64, 256)
    >>> compute_fans((8, 16, 32), input_axes=[0, 1], output_axes=[2])  # MultiHeadAttention's output
    (128, 32)
    """
    kernel_layout = check_kernel_layout("compute_fans", kernel_layout)
    input_axes, output_axes = check_axes("compute_fans", input_axes, output_axes)
    shape = tuple(int(d) for d in shape)
    if input_axes is not None:
        return axes_fans(shape, kernel_layout, input_axes, output_axes)
    if kernel_layout not in KERNEL_LAYOUTS:
        inputs, outputs, _ = equation_axes(shape, kernel_layout)
        return math.prod(shape[a] for a in inputs), math.prod(shape[a] for a in outputs)
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


def equation_axes(shape: Tuple[int, ...], equation: str) -> Tuple[List[int], List[int], List[int]]:
    """The kernel axes an EinsumDense equation sums over, adds, and shares.

    Returns ``(inputs, outputs, shared)``: the axes whose labels are absent
    from the output spec, those only in the output spec, and those in both
    the input and the output spec (counted in neither fan).
    """
    inputs, kernel, outputs = EINSUM_EQUATION.fullmatch(equation).groups()
    if len(kernel) != len(shape):
        raise ValueError(
            f"compute_fans: the equation {equation!r} gives the kernel {len(kernel)} axes "
            f"({kernel!r}); received a kernel of shape {shape}."
        )
    summed = [axis for axis, label in enumerate(kernel) if label not in outputs]
    added = [axis for axis, label in enumerate(kernel) if label in outputs and label not in inputs]
    shared = [axis for axis, label in enumerate(kernel) if label in outputs and label in inputs]
    return summed, added, shared


def axes_fans(shape: Tuple[int, ...], kernel_layout: str, input_axes: List[int], output_axes: List[int]):
    """`(fan_in, fan_out)` from the axes a layer handed over."""
    if any(axis >= len(shape) for axis in input_axes + output_axes):
        raise ValueError(
            f"compute_fans: input_axes={input_axes} and output_axes={output_axes} must be axes "
            f"of the kernel; received a kernel of shape {shape} (rank {len(shape)})."
        )
    if kernel_layout not in KERNEL_LAYOUTS and len(EINSUM_EQUATION.fullmatch(kernel_layout)[2]) == len(shape):
        inputs, outputs, shared = equation_axes(shape, kernel_layout)
        # The equation describes this very kernel: it also knows the shared axes.
        if sorted(input_axes) == inputs and sorted(output_axes) == sorted(outputs + shared):
            output_axes = outputs
    return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)


def check_axes(owner: str, input_axes, output_axes) -> Tuple[Optional[List[int]], Optional[List[int]]]:
    """Return the axes as lists of ints, both None, or raise ValueError.

    Both or neither must be given, each a sequence of distinct non-negative
    integers, and no axis in both.
    """
    if (input_axes is None) != (output_axes is None):
        raise ValueError(
            f"{owner}: arguments `input_axes` and `output_axes` must be given together or both "
            f"left None; received input_axes={input_axes!r}, output_axes={output_axes!r}."
        )
    if input_axes is None:
        return None, None
    checked = []
    for name, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
        valid = (
            isinstance(axes, Sequence)
            and not isinstance(axes, (str, bytes))
            and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 0 for a in axes)
            and len(set(axes)) == len(axes)
        )
        if not valid:
            raise ValueError(
                f"{owner}: argument `{name}` must be None or a list of distinct non-negative "
                f"integers; received {name}={axes!r}."
            )
        checked.append([int(a) for a in axes])
    if set(checked[0]) & set(checked[1]):
        raise ValueError(
            f"{owner}: arguments `input_axes` and `output_axes` must not share an axis; "
            f"received input_axes={input_axes!r}, output_axes={output_axes!r}."
        )
    return checked[0], checked[1]


def check_kernel_layout(owner: str, kernel_layout) -> str:
    """Return `kernel_layout` if it is one of `KERNEL_LAYOUTS` or an EinsumDense equation."""
    if isinstance(kernel_layout, str) and EINSUM_EQUATION.fullmatch(kernel_layout):
        return kernel_layout
    try:
        return check_choice(owner, "kernel_layout", kernel_layout, KERNEL_LAYOUTS)
    except ValueError as error:
        raise ValueError(f"{error} An EinsumDense equation such as 'ab,bcd->acd' is accepted too.") from None


def fan_for_mode(
    shape: Sequence[int],
    mode: str,
    kernel_layout: str = "standard",
    input_axes: Optional[Sequence[int]] = None,
    output_axes: Optional[Sequence[int]] = None,
) -> float:
    """The fan that `mode` selects: fan_in, fan_out or their mean, at least 1."""
    fan_in, fan_out = compute_fans(shape, kernel_layout, input_axes, output_axes)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    # A zero-sized kernel has no fan; 1 keeps the scale finite, as Keras does.
    return max(1.0, float(fan))
