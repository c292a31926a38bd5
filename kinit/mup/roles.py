"""Which dimensions of a variable grow with width, and what that makes it.

μP sorts every variable by whether its fan-in and its fan-out are "infinite"
(grow with the model's width) or "finite" (fixed: image size, vocabulary,
number of classes, kernel size):

===========  ==============  ===============  ===============================
role         fan-in          fan-out          examples
===========  ==============  ===============  ===============================
``input``    finite          infinite         first Dense, Embedding table
``hidden``   infinite        infinite         Dense w → w, attention kernels
``output``   infinite        finite           the readout (logits) layer
``vector``   (a bias-like weight with an infinite axis)  biases, γ, β
``fixed``    no infinite axis at all          the readout's bias
===========  ==============  ===============  ===============================

The paper (Yang et al. 2022, Table 3) calls the first and fourth rows
together "input weights & all biases"; microsoft/mup calls every variable
with one infinite dimension "vector-like" and with two "matrix-like".

kinit reads the fan-in and fan-out *axes* of a kernel from its layer, as
`kinit.fans` does: ``(…, in, out)`` for Dense and Conv, ``(…, out, in)`` for
Conv*Transpose, an EinsumDense kernel's labels from its equation (so the
``(d_model, heads, head_dim)`` kernels of MultiHeadAttention have one fan-in
axis and two fan-out axes). A depthwise kernel's channel axis, and an
EinsumDense label that is both in the input and the output, count with the
fan-out. Biases and other weights that are not kernels have only fan-out
axes. The *width multiplier* of a fan is its size over its size in the base
model (the product over its infinite axes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from kinit.fans import EINSUM_EQUATION
from kinit.layer_kinds import KERNEL_WEIGHTS, kernel_layout

ROLES = ("input", "hidden", "output", "vector", "fixed")

#: How reports name the roles.
ROLE_NAMES = {
    "input": "input-like",
    "hidden": "hidden (matrix-like)",
    "output": "output-like",
    "vector": "vector-like",
    "fixed": "fixed (no width dimension)",
}


@dataclass(frozen=True)
class ShapeRecord:
    """The μP record of one variable.

    Attributes:
        path: the variable's path (``dense_1/kernel``) when it was recorded.
        shape: its shape.
        base_shape: its shape in the base model, with None for the finite
            (non-width) dimensions, as microsoft/mup's ``InfShape`` base shape.
        role: one of `ROLES`.
        fan_in_mult: fan-in over the base fan-in (1 if the fan-in is finite).
        fan_out_mult: fan-out over the base fan-out (1 if finite).
        readout: True if the layer multiplies its input by
            ``1 / fan_in_mult`` in the forward pass (`kinit.mup.Readout`):
            then the output weights follow the paper's Table 8 instead of
            Table 3.
    """

    path: str
    shape: Tuple[int, ...]
    base_shape: Tuple[Optional[int], ...]
    role: str
    fan_in_mult: float = 1.0
    fan_out_mult: float = 1.0
    readout: bool = False

    @property
    def width_mult(self) -> float:
        """The multiplier μP scales this variable by: the fan-in's for hidden
        and output weights, the fan-out's for input weights and vectors, 1
        for fixed ones (microsoft/mup's ``infshape.width_mult()``)."""
        if self.role in ("hidden", "output"):
            return self.fan_in_mult
        if self.role in ("input", "vector"):
            return self.fan_out_mult
        return 1.0

    @property
    def full_base_shape(self) -> Tuple[int, ...]:
        """The shape of the variable in the base model (finite dims as they are)."""
        return tuple(d if b is None else b for d, b in zip(self.shape, self.base_shape))

    def to_config(self) -> dict:
        return {
            "path": self.path,
            "shape": list(self.shape),
            "base_shape": list(self.base_shape),
            "role": self.role,
            "fan_in_mult": self.fan_in_mult,
            "fan_out_mult": self.fan_out_mult,
            "readout": self.readout,
        }

    @classmethod
    def from_config(cls, config: dict) -> "ShapeRecord":
        return cls(
            path=str(config["path"]),
            shape=tuple(int(d) for d in config["shape"]),
            base_shape=tuple(None if b is None else int(b) for b in config["base_shape"]),
            role=str(config["role"]),
            fan_in_mult=float(config["fan_in_mult"]),
            fan_out_mult=float(config["fan_out_mult"]),
            readout=bool(config["readout"]),
        )

    def describe(self) -> str:
        """``hidden (matrix-like), width multiplier 16 (fan-in 1024 = 16 × 64)``."""
        text = f"{ROLE_NAMES[self.role]}, width multiplier {self.width_mult:g}"
        if self.role == "hidden" and self.fan_out_mult != self.fan_in_mult:
            text += f" (fan-out multiplier {self.fan_out_mult:g})"
        return text


@dataclass(frozen=True)
class Axes:
    """The fan-in and fan-out axes of a variable (non-negative indices)."""

    fan_in: Tuple[int, ...]
    fan_out: Tuple[int, ...]
    kernel: bool
    note: str = ""


def variable_axes(layer, weight_name: str, rank: int) -> Axes:
    """The fan-in and fan-out axes of the weight `weight_name` of `layer`."""
    if weight_name in KERNEL_WEIGHTS and rank >= 2:
        return _kernel_axes(kernel_layout(layer, weight_name), rank)
    if weight_name == "bias" or rank <= 1:
        return Axes((), tuple(range(rank)), kernel=False)
    # A matrix that is not a known kernel (a custom layer's weight): Keras's
    # convention (…, in, out), and the record says it was assumed.
    return Axes((rank - 2,), (rank - 1,), kernel=True, note="axes assumed (…, in, out)")


def _kernel_axes(layout: str, rank: int) -> Axes:
    if layout == "standard":
        return Axes((rank - 2,), (rank - 1,), kernel=True)
    if layout == "transposed":
        return Axes((rank - 1,), (rank - 2,), kernel=True)
    if layout == "depthwise":  # (…, channels, multiplier): channels run in parallel
        return Axes((), (rank - 2, rank - 1), kernel=True)
    inputs, kernel, outputs = EINSUM_EQUATION.fullmatch(layout).groups()
    fan_in = tuple(i for i, label in enumerate(kernel) if label not in outputs)
    fan_out = tuple(i for i, label in enumerate(kernel) if label in outputs)
    return Axes(fan_in, fan_out, kernel=True)


def make_record(path: str, layer, weight_name: str, shape: Sequence[int], base: Sequence[int],
                infinite: Sequence[bool], readout: bool) -> ShapeRecord:
    """The record of a variable of `shape` whose base shape is `base` and
    whose dimensions `infinite` grow with width."""
    shape, base = tuple(int(d) for d in shape), tuple(int(b) for b in base)
    axes = variable_axes(layer, weight_name, len(shape))
    spatial = [i for i in range(len(shape)) if i not in axes.fan_in + axes.fan_out]
    grown = [i for i in spatial if infinite[i]]
    if grown:
        raise ValueError(
            f"set_base_shapes: variable {path!r} of shape {shape} (base {base}) changes along "
            f"axes {grown}, which are neither its fan-in nor its fan-out (e.g. a kernel size); "
            "μP scales only widths."
        )

    def mult(axis_list) -> float:
        return math.prod(shape[i] / base[i] for i in axis_list if infinite[i])

    in_inf = any(infinite[i] for i in axes.fan_in)
    out_inf = any(infinite[i] for i in axes.fan_out)
    if axes.kernel:
        role = {(True, True): "hidden", (False, True): "input", (True, False): "output"}.get((in_inf, out_inf), "fixed")
    else:
        role = "vector" if out_inf else "fixed"
    return ShapeRecord(
        path=path,
        shape=shape,
        base_shape=tuple(b if inf else None for b, inf in zip(base, infinite)),
        role=role,
        fan_in_mult=float(mult(axes.fan_in)),
        fan_out_mult=float(mult(axes.fan_out)),
        readout=bool(readout and role == "output"),
    )
