"""Random initializers with fixed parameters (no dependence on the fans)."""

from __future__ import annotations

import math
from typing import Optional

from kinit.base import MAX_TAIL_STDDEVS, RandomInitializer, normal_cdf, register
from kinit.validation import check_number


@register
class RandomUniform(RandomInitializer):
    """Draws from a uniform distribution on ``[minval, maxval)``.

    In float16 and bfloat16 the values are float32 draws rounded to the
    dtype, so they lie in the *closed* interval between the bounds rounded
    to the dtype: draws within half a unit of the last place below `maxval`
    round up to it (``RandomUniform(0, 1)`` in bfloat16 gives 1.0 about
    once in 512 values).

    Formula: ``W ~ U(minval, maxval)``; mean ``(minval + maxval) / 2``,
    variance ``(maxval - minval)² / 12``.

    ``RandomUniform(0, 1)`` is the "uniform [0, 1]" scheme of the
    FashionMNIST comparison: all weights positive, so every unit of a layer
    sees nearly the same weighted sum.

    Examples:

    >>> # Standalone usage:
    >>> initializer = kinit.RandomUniform(minval=0.0, maxval=1.0, seed=0)
    >>> values = initializer(shape=(2, 2))

    >>> # Usage in a Keras layer:
    >>> layer = keras.layers.Dense(3, kernel_initializer=kinit.RandomUniform(-0.05, 0.05))

    Args:
        minval: lower bound (inclusive).
        maxval: upper bound (exclusive in float32 and float64; reachable
            after rounding to float16 or bfloat16); must exceed `minval`.
        seed: None or an int; see "Seeds" in the README (successive calls of
            one instance differ, unlike Keras's built-ins).

    Reference:
        Keras `RandomUniform`; Goodfellow, Bengio & Courville 2016, §8.4.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: Optional[int] = None):
        owner = type(self).__name__
        self.minval = check_number(owner, "minval", minval)
        self.maxval = check_number(owner, "maxval", maxval, minimum=self.minval)
        super().__init__(seed)

    def generate(self, shape, dtype):
        return self.uniform(shape, dtype, self.minval, self.maxval)


@register
class RandomNormal(RandomInitializer):
    """Draws from a normal distribution.

    Formula: ``W ~ N(mean, stddev²)``.

    Examples:

    >>> initializer = kinit.RandomNormal(mean=0.0, stddev=0.01, seed=0)
    >>> values = initializer(shape=(2, 2))
    >>> layer = keras.layers.Dense(3, kernel_initializer=kinit.RandomNormal(stddev=0.01))

    Args:
        mean: the mean.
        stddev: the standard deviation, > 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Keras `RandomNormal`; Glorot & Bengio 2010 (why a fixed stddev
        vanishes or explodes with depth).
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Optional[int] = None):
        owner = type(self).__name__
        self.mean = check_number(owner, "mean", mean)
        self.stddev = check_number(owner, "stddev", stddev, minimum=0.0)
        super().__init__(seed)

    def generate(self, shape, dtype):
        return self.normal(shape, dtype, self.mean, self.stddev)


@register
class ScaledNormal(RandomNormal):
    """A standard normal draw multiplied by `scale`.

    Formula: ``W = scale · z``, ``z ~ N(0, 1)``, i.e. ``W ~ N(0, scale²)``.

    The plain "random initialization" of the tutorials: ``scale=0.01`` makes
    the signal vanish with depth, ``scale=10`` makes it explode (and
    saturates sigmoid/tanh units).

    Examples:

    >>> values = kinit.ScaledNormal(10.0, seed=0)(shape=(2, 2))
    >>> layer = keras.layers.Dense(3, kernel_initializer=kinit.ScaledNormal(0.01))

    Args:
        scale: the multiplier, > 0.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Glorot & Bengio 2010, "Understanding the difficulty of training deep
        feedforward neural networks".
    """

    def __init__(self, scale: float = 1.0, seed: Optional[int] = None):
        self.scale = check_number(type(self).__name__, "scale", scale, minimum=0.0)
        super().__init__(mean=0.0, stddev=self.scale, seed=seed)


@register
class TruncatedNormal(RandomInitializer):
    """Draws from a truncated normal distribution.

    Formula: ``W ~ N(mean, stddev²)`` conditioned on ``minval <= W <= maxval``.

    By default the bounds are ``mean ± 2·stddev``, as in Keras (values
    outside are redrawn); the variance is then ``0.7737·stddev²``. Pass both
    `minval` and `maxval` for absolute bounds, as ``torch.nn.init.trunc_normal_``
    takes them (its ``a`` and ``b`` are absolute values, not multiples of the
    standard deviation).

    Examples:

    >>> # Keras style, truncated at ±2σ:
    >>> values = kinit.TruncatedNormal(stddev=0.02, seed=0)(shape=(2, 2))
    >>> # torch style, absolute bounds:
    >>> init = kinit.TruncatedNormal(stddev=0.02, minval=-0.04, maxval=0.04)
    >>> layer = keras.layers.Dense(3, kernel_initializer=init)

    Args:
        mean: the mean of the untruncated normal.
        stddev: the standard deviation of the untruncated normal, > 0.
        minval: absolute lower bound, or None for ``mean - 2·stddev``.
        maxval: absolute upper bound, or None for ``mean + 2·stddev``.
            Give both bounds or neither. An interval on one side of the mean
            is sampled from its tail probabilities, so far-tail intervals
            such as ``[mean + 6·stddev, mean + 7·stddev]`` keep their
            distribution; its nearer bound must lie within 11 stddev of the
            mean.
        seed: None or an int (successive calls of one instance differ).

    Reference:
        Keras `TruncatedNormal`; torch.nn.init.trunc_normal_.
    """

    def __init__(
        self,
        mean: float = 0.0,
        stddev: float = 0.05,
        minval: Optional[float] = None,
        maxval: Optional[float] = None,
        seed: Optional[int] = None,
    ):
        owner = type(self).__name__
        self.mean = check_number(owner, "mean", mean)
        self.stddev = check_number(owner, "stddev", stddev, minimum=0.0)
        self.minval = check_number(owner, "minval", minval, allow_none=True)
        self.maxval = check_number(owner, "maxval", maxval, allow_none=True)
        if (self.minval is None) != (self.maxval is None):
            raise ValueError(
                f"{owner}: arguments `minval` and `maxval` must be given together "
                f"(absolute bounds) or both left None (mean ± 2·stddev); received "
                f"minval={minval!r}, maxval={maxval!r}."
            )
        if self.minval is not None:
            check_number(owner, "maxval", self.maxval, minimum=self.minval)
            alpha, beta = (self.minval - self.mean) / self.stddev, (self.maxval - self.mean) / self.stddev
            nearer = max(alpha, -beta, 0.0)  # 0 when the interval holds the mean
            if nearer > MAX_TAIL_STDDEVS:
                raise ValueError(
                    f"{owner}: arguments `minval` and `maxval` must not both lie more than "
                    f"{MAX_TAIL_STDDEVS:g} stddev from the mean (the tail probability there "
                    f"underflows float32); received minval={minval!r}, maxval={maxval!r}, "
                    f"{nearer:.3g} stddev from mean={self.mean!r}."
                )
        super().__init__(seed)

    def generate(self, shape, dtype):
        if self.minval is None:
            return self.truncated_normal(shape, dtype, self.mean, self.stddev)
        return self.bounded_normal(shape, dtype, self.mean, self.stddev, self.minval, self.maxval)


#: Standard deviation of a standard normal truncated at ±2 (0.8796), used by the variance schemes.
TRUNCATED_2SIGMA_STD = math.sqrt(
    1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / (2.0 * normal_cdf(2.0) - 1.0)
)
