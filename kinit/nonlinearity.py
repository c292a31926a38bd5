"""Which nonlinearity acts on a layer's output.

A kernel's best scale depends on the nonlinearity its output goes through,
and in Keras that is either fused into the layer (``Dense(64,
activation="relu")``) or applied after it (``Dense(64)`` then ``ReLU()``, or
``keras.ops.relu(x)`` inside a custom layer), possibly behind a
normalization layer (``Conv2D`` → ``BatchNormalization`` → ``ReLU``).
`following_nonlinearity` reads the model map (`kinit.model_map`) and looks
in this order:

1. the layer's own ``activation``, unless it is linear;
2. the calls that read its output, as the model runs: an ``Activation``
   layer, ``ReLU`` (its ``negative_slope`` makes it leaky), ``LeakyReLU``
   (its slope), ``PReLU`` (the mean of its current slopes), ``ELU`` (its
   α), ``Softmax``, or an activation op (``keras.ops.relu(x)``);
3. through normalization layers (Batch/Layer/Group/RMS/Unit normalization),
   dropout/noise layers, pooling, padding, cropping, reshaping layers and
   the ops that only move values (`kinit.layer_kinds.PASS_THROUGH_OPS`), to
   what reads them (``Conv2D`` → ``MaxPooling2D`` → ``ReLU`` is a ReLU);
4. through the merges ``Concatenate`` (an elementwise nonlinearity after it
   acts on each part as it is) and the sums ``Add``, ``Subtract``,
   ``Average`` (layers or ``x + y``), so the last convolution of a residual
   branch, ``Conv2D`` → ``BatchNormalization`` → ``Add`` → ``ReLU``, counts
   as followed by ReLU, as in He et al. (2016), who initialize every
   convolution of a ResNet for ReLU.

If the output feeds several calls that disagree, or a call that is none of
the above (``Multiply``, another ``Dense``, an attention op, …), or is the
model's output, the result is linear. Where the map does not know what
reads the output (the layer runs inside a layer that could not be traced,
or the model could only be run eagerly), the result is linear with the
label ``"wiring unknown"`` and the map's reason: never a guess.

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

from kinit.layer_kinds import MERGE_OPS, MERGES, PASS_THROUGH, PASS_THROUGH_OPS
from kinit.model_map import TRACED, Call, LayerRecord, ModelMap

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


def following_nonlinearity(model_map: ModelMap, record: LayerRecord, weight=None) -> Nonlinearity:
    """The nonlinearity applied to the output of `record`'s layer.

    For a `weight` of a composite layer (one traced through, so it has no
    output of its own), the nonlinearity after the ops that read the weight
    directly (``keras.ops.matmul(x, self.kernel)``).
    """
    activation = getattr(record.layer, "activation", None)
    if activation is not None:
        own = activation_nonlinearity(activation, "own activation")
        if own.name != "linear":
            return own
    if record.wiring != TRACED:
        return wiring_unknown(record.why_unknown)
    if record.composite:
        users = model_map.users_of(weight) if weight is not None else []
        if not users:
            return wiring_unknown("no op the model map saw reads this weight directly")
        return _agreed([_relabel(_after(user, via=[]), f"read by {user.label}") for user in users])
    found = [_after(call, via=[]) for call in model_map.calls_of(record)]
    return _agreed(found)


def _relabel(nonlinearity: Nonlinearity, prefix: str) -> Nonlinearity:
    return Nonlinearity(nonlinearity.name, nonlinearity.param, nonlinearity.label,
                        f"{prefix}, {nonlinearity.source}")


def wiring_unknown(why: str) -> Nonlinearity:
    """The result where the map cannot tell what reads an output."""
    return Nonlinearity("linear", None, "wiring unknown", why)


def looks_through(call: Call) -> bool:
    """Whether the search for a nonlinearity continues past `call`."""
    if call.kind == "op":
        return type(call.operation).__name__ in PASS_THROUGH_OPS + MERGE_OPS
    return isinstance(call.operation, PASS_THROUGH + MERGES)


def _after(call: Call, via: List[str]) -> Nonlinearity:
    found = [linear("model output" + (f", after {' then '.join(via)}" if via else ""))] if call.is_output else []
    for consumer in call.consumers:
        path = via + [repr(consumer.path)]
        noun = "op" if consumer.kind == "op" else "layer"
        source = (f"next {noun} " if not via else "after ") + " then ".join(path)
        if consumer.opaque:
            nonlinearity = wiring_unknown(f"{source} could not be traced, so what acts on the output is not known")
        else:
            nonlinearity = layer_nonlinearity(consumer.operation, source)
        if nonlinearity is None and looks_through(consumer):
            nonlinearity = _after(consumer, path)
        if nonlinearity is None:
            nonlinearity = linear(f"next {noun} {consumer.label} is no activation")
        found.append(nonlinearity)
    if not found:
        return linear("its output is not used")
    return _agreed(found)


def _agreed(found: List[Nonlinearity]) -> Nonlinearity:
    if not found:
        return linear("it was not called")
    unknown = [item for item in found if item.label == "wiring unknown"]
    if unknown:
        return unknown[0]
    if all(item.same_as(found[0]) for item in found):
        return found[0]
    labels = ", ".join(sorted({item.label for item in found}))
    return linear(f"output feeds calls with different nonlinearities ({labels})")


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
