"""Which nonlinearity acts on a layer's output.

A kernel's best scale depends on the nonlinearity its output goes through,
and in Keras that is either fused into the layer (``Dense(64,
activation="relu")``) or a separate layer after it (``Dense(64)`` then
``ReLU()``), possibly behind a normalization layer (``Conv2D`` →
``BatchNormalization`` → ``ReLU``). `following_nonlinearity` looks in this
order:

1. the layer's own ``activation``, unless it is linear;
2. the layers that consume its output (see `kinit.graph`): an
   ``Activation`` layer, ``ReLU`` (its ``negative_slope`` makes it leaky),
   ``LeakyReLU`` (its slope), ``PReLU`` (the mean of its current slopes),
   ``ELU`` (its α), ``Softmax``, or an activation op applied to a symbolic
   tensor (``keras.ops.relu(x)``);
3. through normalization layers (Batch/Layer/Group/RMS/Unit normalization),
   dropout/noise layers, pooling (Max/Average/GlobalMax/GlobalAverage),
   ZeroPadding, Cropping, Reshape and Flatten layers, to the layer after
   them (``Conv2D`` → ``MaxPooling2D`` → ``ReLU`` is a ReLU layer);
4. through the merges in `MERGES`: ``Concatenate`` (an elementwise
   nonlinearity after it acts on each part as it is) and the sums ``Add``,
   ``Subtract`` and ``Average``, so the last convolution of a residual
   branch, ``Conv2D`` → ``BatchNormalization`` → ``Add`` → ``ReLU``, counts
   as followed by ReLU, as in He et al. (2016), who initialize every
   convolution of a ResNet for ReLU.

If the output feeds several layers that disagree, or a layer that is none
of the above (``Multiply``, another ``Dense``, …), or is the model's
output, the result is linear.

Reference:
    He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition",
    CVPR 2016.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional

import keras
import numpy as np

#: Normalization layers with a learned scale (γ) and, but for RMS, shift (β).
NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
)

#: Layers that normalize or only add noise.
NORMALIZATION_OR_NOISE = NORMALIZATION + (
    keras.layers.UnitNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

#: Layers that pool, pad, crop or reshape: the nonlinearity after them acts
#: on the values they pass on (ReLU commutes with max pooling).
RESAMPLING = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.Reshape,
    keras.layers.Flatten,
)

#: Layers looked through to the next layer when searching for the nonlinearity.
PASS_THROUGH = NORMALIZATION_OR_NOISE + RESAMPLING

#: Merges looked through too: the nonlinearity after them acts on each input's
#: values (Concatenate) or on their sum (residual connections).
MERGES = (keras.layers.Concatenate, keras.layers.Add, keras.layers.Subtract, keras.layers.Average)

#: Keras activation names → (name for `calculate_gain` or a family name, default parameter).
ACTIVATIONS = {
    "relu": ("relu", None),
    "relu6": ("relu", None),
    "leaky_relu": ("leaky_relu", 0.2),  # keras.activations.leaky_relu's default slope
    "elu": ("elu", 1.0),
    "selu": ("selu", None),
    "gelu": ("gelu", None),
    "silu": ("silu", None),
    "swish": ("silu", None),
    "tanh": ("tanh", None),
    "sigmoid": ("sigmoid", None),
    "hard_sigmoid": ("sigmoid", None),
    "softmax": ("softmax", None),
    "log_softmax": ("softmax", None),
    "linear": ("linear", None),
}


@dataclass(frozen=True)
class Nonlinearity:
    """A nonlinearity and where it was found.

    Attributes:
        name: a `calculate_gain` name (``"relu"``, ``"leaky_relu"``,
            ``"tanh"``, …), ``"softmax"``, ``"linear"`` or ``"unknown"``.
        param: the leaky slope or ELU α, else None.
        label: how the report names it, e.g. ``"LeakyReLU(0.2)"``.
        source: where it was found, e.g. ``"own activation"``.
    """

    name: str
    param: Optional[float] = None
    label: str = "linear"
    source: str = ""

    def same_as(self, other: "Nonlinearity") -> bool:
        return (self.name, self.param) == (other.name, other.param)


def linear(source: str) -> Nonlinearity:
    return Nonlinearity("linear", None, "linear", source)


def activation_nonlinearity(fn, source: str) -> Nonlinearity:
    """The nonlinearity of a Keras activation function (or a partial of one)."""
    keywords = {}
    if isinstance(fn, functools.partial):
        fn, keywords = fn.func, fn.keywords
    fn_name = getattr(fn, "__name__", type(fn).__name__)
    if fn_name not in ACTIVATIONS:
        return Nonlinearity("unknown", None, fn_name, source)
    name, param = ACTIVATIONS[fn_name]
    param = keywords.get("negative_slope", keywords.get("alpha", param))
    return Nonlinearity(name, param, _label(fn_name, param), source)


def layer_nonlinearity(layer, source: str) -> Optional[Nonlinearity]:
    """The nonlinearity that `layer` itself is, or None if it is not one."""
    if isinstance(layer, keras.layers.Activation):
        return activation_nonlinearity(layer.activation, source)
    if isinstance(layer, keras.layers.ReLU):
        slope = float(layer.negative_slope)
        if slope:
            return Nonlinearity("leaky_relu", slope, f"ReLU(negative_slope={slope:g})", source)
        return Nonlinearity("relu", None, "ReLU", source)
    if isinstance(layer, keras.layers.LeakyReLU):
        slope = float(layer.negative_slope)
        return Nonlinearity("leaky_relu", slope, f"LeakyReLU({slope:g})", source)
    if isinstance(layer, keras.layers.PReLU):
        slope = float(np.mean(keras.ops.convert_to_numpy(layer.alpha)))
        return Nonlinearity("leaky_relu", slope, f"PReLU(current mean slope {slope:.3g})", source)
    if isinstance(layer, keras.layers.ELU):
        alpha = float(layer.alpha)
        return Nonlinearity("elu", alpha, f"ELU({alpha:g})", source)
    if isinstance(layer, keras.layers.Softmax):
        return Nonlinearity("softmax", None, "Softmax", source)
    if not isinstance(layer, keras.layers.Layer):
        return _op_nonlinearity(layer, source)
    return None


def following_nonlinearity(node) -> Nonlinearity:
    """The nonlinearity applied to the output of the layer of `node`."""
    activation = getattr(node.layer, "activation", None)
    if activation is not None:
        own = activation_nonlinearity(activation, "own activation")
        if own.name != "linear":
            return own
    return _after(node, via=[])


def _after(node, via: List[str]) -> Nonlinearity:
    if not node.outputs:
        return linear("model output")
    found = []
    for consumer in node.outputs:
        path = via + [repr(consumer.path)]
        source = ("next layer " if not via else "after ") + " then ".join(path)
        nonlinearity = layer_nonlinearity(consumer.layer, source)
        if nonlinearity is None and isinstance(consumer.layer, PASS_THROUGH + MERGES):
            nonlinearity = _after(consumer, path)
        if nonlinearity is None:
            kind = type(consumer.layer).__name__
            nonlinearity = linear(f"next layer {consumer.path!r} ({kind}) is no activation")
        found.append(nonlinearity)
    if all(item.same_as(found[0]) for item in found):
        return found[0]
    labels = ", ".join(sorted({item.label for item in found}))
    return linear(f"output feeds layers with different nonlinearities ({labels})")


def _op_nonlinearity(operation, source: str) -> Optional[Nonlinearity]:
    # Activation ops applied to symbolic tensors: Relu, Tanh, LeakyRelu, ...
    kind = type(operation).__name__.lower()
    names = {"leakyrelu": "leaky_relu", "hardsigmoid": "hard_sigmoid", "logsoftmax": "log_softmax"}
    kind = names.get(kind, kind)
    if kind not in ACTIVATIONS:
        return None
    name, param = ACTIVATIONS[kind]
    param = getattr(operation, "negative_slope", getattr(operation, "alpha", param))
    return Nonlinearity(name, param, _label(kind, param), source)


def _label(name: str, param: Optional[float]) -> str:
    return name if param is None else f"{name}({param:g})"
