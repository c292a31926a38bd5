"""Constant initializers: the zero, one and constant baselines.

They are the baselines of every initialization tutorial, and the failure it
warns about: all units of a layer start equal, receive equal gradients and
stay equal (the symmetry problem), so the layer behaves like a single unit.
"""

from __future__ import annotations

from keras import ops

from kinit.base import KinitInitializer, register
from kinit.validation import check_number


@register
class Constant(KinitInitializer):
    """Fills the tensor with one value.

    Formula: ``W[i] = value`` for every element.

    Works for every dtype, including integer and boolean ones.

    Examples:

    >>> # Standalone usage:
    >>> initializer = kinit.Constant(0.1)
    >>> values = initializer(shape=(2, 2))

    >>> # Usage in a Keras layer:
    >>> layer = keras.layers.Dense(3, bias_initializer=kinit.Constant(0.1))

    Args:
        value: a finite Python number.

    Reference:
        Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.4 (why equal
        weights never break symmetry).
    """

    float_only = False

    def __init__(self, value: float = 0.0):
        self.value = check_number(type(self).__name__, "value", value)

    def generate(self, shape, dtype):
        return ops.full(shape, self.value, dtype=dtype)


@register
class Zeros(Constant):
    """Fills the tensor with 0.

    Formula: ``W[i] = 0``. Right for biases; for kernels every unit computes
    the same output, so a network started from zeros cannot break symmetry
    (and with ReLU it receives no gradient at all).

    Examples:

    >>> values = kinit.Zeros()(shape=(2, 2))
    >>> layer = keras.layers.Dense(3, kernel_initializer=kinit.Zeros())

    Reference:
        Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.4.
    """

    def __init__(self):
        super().__init__(0.0)


@register
class Ones(Constant):
    """Fills the tensor with 1.

    Formula: ``W[i] = 1``. Every unit of a layer starts identical (the
    symmetry problem), and the pre-activation scale grows with the fan-in.

    Examples:

    >>> values = kinit.Ones()(shape=(2, 2))
    >>> layer = keras.layers.Dense(3, kernel_initializer=kinit.Ones())

    Reference:
        Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.4.
    """

    def __init__(self):
        super().__init__(1.0)
