"""The rule table of the ``"auto"`` policy: a scheme for every weight, and why.

=====================================  ======================================
weight                                 scheme
=====================================  ======================================
kernel, nonlinearity ReLU / ReLU6      He normal, Var = 2 / fan_in
kernel, leaky ReLU of slope a          He normal, Var = 2 / ((1 + a²) fan_in)
(LeakyReLU, PReLU, ReLU(slope))
kernel, ELU / GELU / SiLU              He normal, Var = gain² / fan_in with the
                                       second-moment gain of `calculate_gain`
kernel, SELU                           LeCun normal, Var = 1 / fan_in
kernel, tanh / sigmoid / softmax /     Glorot uniform,
linear / unknown                       Var = 2 / (fan_in + fan_out)
SeparableConv depthwise kernel         Glorot uniform (linear: the pointwise
                                       stage follows), depthwise fans
RNN cell input kernel                  Glorot uniform
RNN cell recurrent kernel              orthogonal, gain 1
bias                                   0 (or `relu_bias` before a ReLU family
                                       nonlinearity); LSTM forget gate 1
Embedding                              N(0, σ²), σ = `embedding_stddev`
normalization γ / scale                1 (0 for residual branches on request)
normalization β                        0
moving mean / moving variance          0 / 1
kinit.Scale / kinit.Bias scalar        1 / 0 (Fixup's multiplier and biases)
anything else                          left unchanged
=====================================  ======================================

"Kernel" means the kernel of Dense, EinsumDense, Conv*, Conv*Transpose,
DepthwiseConv* and the pointwise kernel of SeparableConv*; the nonlinearity
is the one `kinit.nonlinearity.following_nonlinearity` finds. Fans are read
in the layout of the layer's kernel (``"transposed"`` for Conv*Transpose,
``"depthwise"`` for depthwise kernels, the layer's equation for EinsumDense,
also inside MultiHeadAttention), see `kinit.fans`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import keras
import numpy as np

from kinit.constant import Constant, Ones, Zeros
from kinit.gains import calculate_gain
from kinit.keras_adapter import own_weights
from kinit.layer_kinds import KERNEL_WEIGHTS, NORMALIZATION, SEPARABLE, kernel_layout
from kinit.model_map import LayerRecord, ModelMap
from kinit.nonlinearity import Nonlinearity, following_nonlinearity
from kinit.orthogonal import Orthogonal
from kinit.random import RandomNormal
from kinit.scalars import Bias, Scale
from kinit.variance import GlorotUniform, HeNormal, LecunNormal

NORMALIZATION_ONES = ("gamma", "scale", "moving_variance", "moving_stddev", "renorm_stddev")
NORMALIZATION_ZEROS = ("beta", "moving_mean", "renorm_mean")
#: Nonlinearities whose kernels get He initialization (with their own gain).
HE_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "silu")
RELU_FAMILY = ("relu", "leaky_relu")


@dataclass
class Choice:
    """A scheme for one weight: `initializer(shape, dtype)` or None to keep it."""

    initializer: Optional[Callable]
    scheme: str
    reason: str


@dataclass
class AutoOptions:
    relu_bias: float = 0.0
    embedding_stddev: float = 0.02
    #: Normalization records whose γ starts at 0 → the sum call they feed.
    zero_gamma: Optional[dict] = None


def auto_choice(model_map: ModelMap, record: LayerRecord, weight, seed: int, options: AutoOptions) -> Choice:
    """The ``"auto"`` scheme of `weight`, a variable owned by `record.layer`."""
    layer, name = record.layer, weight.name
    kind = type(layer).__name__
    if _is_recurrent_cell(layer):
        return _recurrent_choice(layer, weight, seed)
    if isinstance(layer, keras.layers.Embedding) and name == "embeddings":
        sigma = options.embedding_stddev
        return Choice(RandomNormal(0.0, sigma, seed=seed), f"normal, σ = {sigma:g}", "Embedding → small normal")
    if isinstance(layer, NORMALIZATION) and name in NORMALIZATION_ONES + NORMALIZATION_ZEROS:
        return _normalization_choice(record, name, options)
    if isinstance(layer, (Scale, Bias)):
        return scalar_choice(layer)
    if name in KERNEL_WEIGHTS:
        layout = kernel_layout(layer, name)
        if isinstance(layer, SEPARABLE) and name == "depthwise_kernel":
            nonlinearity = Nonlinearity("linear", None, "linear", "the pointwise stage follows")
        else:
            nonlinearity = following_nonlinearity(model_map, record, weight)
        return variance_choice(kind, nonlinearity, layout, seed)
    if name == "bias":
        return _bias_choice(model_map, record, options)
    return Choice(None, "unchanged", f"no rule for {kind}.{name}")


def variance_choice(kind: str, nonlinearity: Nonlinearity, layout: str, seed: int) -> Choice:
    """He / LeCun / Glorot by the nonlinearity that follows the kernel."""
    if nonlinearity.name in HE_FAMILY:
        gain = calculate_gain(nonlinearity.name, nonlinearity.param)
        initializer = HeNormal(gain=gain, kernel_layout=layout, seed=seed)
        scheme = f"He normal, gain {gain_text(gain)}: Var = gain²/fan_in"
    elif nonlinearity.name == "selu":
        initializer = LecunNormal(kernel_layout=layout, seed=seed)
        scheme = "LeCun normal: Var = 1/fan_in"
    else:
        initializer = GlorotUniform(kernel_layout=layout, seed=seed)
        scheme = "Glorot uniform: Var = 2/(fan_in + fan_out)"
    label = nonlinearity.label
    if nonlinearity.name == "unknown":
        label = f"unrecognized activation {label!r}"
    reason = f"{kind} → {label} ({nonlinearity.source}) → {scheme.split(':')[0]}"
    if label == "wiring unknown":
        reason += " (the default)"
    if layout in ("transposed", "depthwise"):
        reason += f"; fans read in the {layout} layout"
    elif layout != "standard":
        reason += f"; fans read from the equation {layout!r}"
    return Choice(initializer, scheme, reason)


def scalar_choice(layer) -> Choice:
    """kinit.Scale starts at 1, kinit.Bias at 0 (Fixup's scalars)."""
    if isinstance(layer, Scale):
        return Choice(Ones(), "ones", "kinit.Scale multiplier starts at 1 (Fixup)")
    return Choice(Zeros(), "zeros", "kinit.Bias starts at 0 (Fixup)")


def gain_text(gain: float) -> str:
    if math.isclose(gain, math.sqrt(2.0)):
        return "√2"
    return f"{gain:.4g}"


def _bias_choice(model_map: ModelMap, record: LayerRecord, options: AutoOptions) -> Choice:
    kind = record.layer_class
    if options.relu_bias:
        nonlinearity = following_nonlinearity(model_map, record)
        if nonlinearity.name in RELU_FAMILY:
            value = options.relu_bias
            return Choice(Constant(value), f"constant {value:g}", f"{kind} → {nonlinearity.label}: small positive bias")
    return Choice(Zeros(), "zeros", "bias")


def _normalization_choice(record: LayerRecord, name: str, options: AutoOptions) -> Choice:
    kind = record.layer_class
    zero_gamma = options.zero_gamma or {}
    if name in ("gamma", "scale") and record in zero_gamma:
        reason = f"last normalization of a residual branch into {zero_gamma[record].label} (Goyal et al. 2017)"
        return Choice(Zeros(), "zeros", reason)
    if name in NORMALIZATION_ONES:
        return Choice(Ones(), "ones", f"{kind} {name} starts at 1")
    return Choice(Zeros(), "zeros", f"{kind} {name} starts at 0")


def _is_recurrent_cell(layer) -> bool:
    # Its own weights: a layer that only holds an RNN (or wraps one) is no cell.
    return any(weight.name == "recurrent_kernel" for weight in own_weights(layer))


def _recurrent_choice(layer, weight, seed: int) -> Choice:
    kind = type(layer).__name__
    if weight.name == "recurrent_kernel":
        return Choice(Orthogonal(1.0, seed=seed), "orthogonal, gain 1", f"{kind} recurrent kernel → orthogonal")
    if weight.name == "kernel":
        return Choice(
            GlorotUniform(seed=seed),
            "Glorot uniform: Var = 2/(fan_in + fan_out)",
            f"{kind} input kernel → Glorot uniform",
        )
    if weight.name == "bias" and hasattr(layer, "unit_forget_bias"):
        return Choice(forget_gate_bias, "zeros, forget gate 1", f"{kind} bias: forget gate starts open")
    if weight.name == "bias":
        return Choice(Zeros(), "zeros", f"{kind} bias")
    return Choice(None, "unchanged", f"no rule for {kind}.{weight.name}")


def forget_gate_bias(shape, dtype=None):
    """An LSTM bias: zeros, except 1 for the forget gate (gates i, f, c, o)."""
    values = np.zeros(shape, dtype="float32")
    units = shape[-1] // 4
    values[..., units : 2 * units] = 1.0
    return keras.ops.cast(values, dtype or keras.config.floatx())
