"""Constant initializers: the zero, one and constant baselines.

They are the baselines of every initialization tutorial, and the failure it
warns about: all units of a layer start equal, receive equal gradients and
stay equal (the symmetry problem), so the layer behaves like a single unit.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np
from keras import ops

from kinit.base import KinitInitializer, register
from kinit.kernel_shapes import shape_error
from kinit.validation import check_number


@register
class Constant(KinitInitializer):
    """Fills the tensor with one value, or with an array broadcast to its shape.

    Formula: ``W[i] = value`` for every element; for an array,
    ``W = broadcast_to(value, shape)`` by NumPy's rules (the value's shape,
    aligned on the right, has each dimension equal to the tensor's or 1).

    Works for every dtype, including integer and boolean ones.

    Examples:

    >>> # Standalone usage:
    >>> initializer = kinit.Constant(0.1)
    >>> values = initializer(shape=(2, 2))
    >>> rows = kinit.Constant([1.0, 2.0, 3.0])(shape=(2, 3))  # [[1, 2, 3], [1, 2, 3]]

    >>> # Usage in a Keras layer:
    >>> layer = keras.layers.Dense(3, bias_initializer=kinit.Constant(0.1))
    >>> gates = keras.layers.Dense(4, bias_initializer=kinit.Constant([0.0, 1.0, 0.0, 0.0]))

    Args:
        value: a finite Python number, or a non-empty array of finite numbers
            (a nested list, NumPy array or tensor), kept as a nested list of
            Python numbers so that the config is plain JSON. An array must
            broadcast to the shape of every tensor it fills.

    Reference:
        Goodfellow, Bengio & Courville 2016, "Deep Learning", §8.4 (why equal
        weights never break symmetry); Keras `Constant`.
    """

    float_only = False

    def __init__(self, value: Union[float, List] = 0.0):
        self.value = check_constant(type(self).__name__, value)

    def generate(self, shape, dtype):
        value = np.asarray(self.value)
        try:
            fits = np.broadcast_shapes(value.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise shape_error(
                type(self).__name__, shape, f"its value of shape {value.shape} does not broadcast to it"
            )
        # Tiled rather than broadcast: a broadcast view (torch's `expand`)
        # shares memory between elements, and a variable made from it cannot
        # be assigned to in place (loading weights, training).
        aligned = (1,) * (len(shape) - value.ndim) + value.shape
        tensor = ops.reshape(ops.convert_to_tensor(value, dtype=dtype), aligned)
        return ops.tile(tensor, [size // part for size, part in zip(shape, aligned)])


def check_constant(owner: str, value):
    """Return `value` as a float, or as a nested list of Python numbers.

    Arrays must be non-empty, of integers or floats (not booleans), all finite.
    """
    if isinstance(value, (list, tuple)) or hasattr(value, "__array__") or hasattr(value, "shape"):
        allowed = "a finite number or a non-empty array of finite numbers"
        try:
            array = np.asarray(ops.convert_to_numpy(value) if hasattr(value, "shape") else value)
        except (TypeError, ValueError):
            array = None
        if array is None or array.dtype.kind not in "iuf" or array.size == 0 or not np.isfinite(array).all():
            raise ValueError(f"{owner}: argument `value` must be {allowed}; received value={value!r}.")
        return array.tolist() if array.ndim else check_number(owner, "value", array.item())
    return check_number(owner, "value", value)


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
