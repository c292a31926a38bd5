"""Learned scalars: Fixup's multiplier and biases as Keras layers.

Fixup (Zhang, Dauphin & Ma 2019) trains residual networks without
normalization by pairing its initialization (`kinit.recipes.Fixup`) with one
learned scalar multiplier per residual branch, starting at 1, and learned
scalar biases, starting at 0, before each convolution, activation and dense
layer. `Scale` and `Bias` are those scalars; ``kinit.initialize`` sets them
to 1 and 0 under every policy. Both are registered for serialization
(``kinit>Scale``, ``kinit>Bias``).

A Fixup basic block (the layout of the authors' reference ResNets):

>>> class FixupBlock(keras.layers.Layer):
...     def __init__(self, channels, **kwargs):
...         super().__init__(**kwargs)
...         self.bias1a, self.bias1b = kinit.Bias(), kinit.Bias()
...         self.conv1 = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)
...         self.bias2a, self.bias2b = kinit.Bias(), kinit.Bias()
...         self.conv2 = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)
...         self.scale = kinit.Scale()
...     def call(self, x):
...         out = keras.ops.relu(self.bias1b(self.conv1(self.bias1a(x))))
...         out = self.bias2b(self.scale(self.conv2(self.bias2a(out))))
...         return keras.ops.relu(out + x)
"""

from __future__ import annotations

import keras

from kinit.base import register
from kinit.validation import check_number


class _Scalar(keras.layers.Layer):
    """One learned scalar applied to the whole input."""

    weight_name = ""

    def __init__(self, value: float, **kwargs):
        super().__init__(**kwargs)
        self.value = check_number(type(self).__name__.split(".")[-1], "value", value)
        self.supports_masking = True

    def build(self, input_shape):
        self.scalar = self.add_weight(
            name=self.weight_name, shape=(), initializer=keras.initializers.Constant(self.value)
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config["value"] = self.value
        return config


@register
class Scale(_Scalar):
    """Multiply the input by one learned scalar: ``y = s · x``, s starting at `value`.

    Fixup's multiplier at the end of each residual branch (initialized to 1).

    Example:

    >>> y = kinit.Scale()(keras.ops.ones((2, 3)))      # s = 1 until trained

    Args:
        value: the scalar's initial value (1 by default).
        **kwargs: `keras.layers.Layer` arguments (``name``, ``dtype``, …).

    Reference:
        Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning
        Without Normalization".
    """

    weight_name = "scale"

    def __init__(self, value: float = 1.0, **kwargs):
        super().__init__(value, **kwargs)

    def call(self, inputs):
        return inputs * keras.ops.cast(self.scalar, inputs.dtype)


@register
class Bias(_Scalar):
    """Add one learned scalar to the input: ``y = x + b``, b starting at `value`.

    Fixup's scalar biases before each convolution, activation and the
    classifier (initialized to 0).

    Example:

    >>> y = kinit.Bias()(keras.ops.ones((2, 3)))       # b = 0 until trained

    Args:
        value: the scalar's initial value (0 by default).
        **kwargs: `keras.layers.Layer` arguments (``name``, ``dtype``, …).

    Reference:
        Zhang, Dauphin & Ma 2019.
    """

    weight_name = "bias"

    def __init__(self, value: float = 0.0, **kwargs):
        super().__init__(value, **kwargs)

    def call(self, inputs):
        return inputs + keras.ops.cast(self.scalar, inputs.dtype)
