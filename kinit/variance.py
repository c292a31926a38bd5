"""Variance scaling: one mechanism, and the named schemes as presets of it.

Every scheme here draws zero-mean values with

    Var(W) = scale / n,   n = fan_in, fan_out or (fan_in + fan_out) / 2

and differs only in `scale`, `mode` and the distribution's shape. LeCun,
Glorot (Xavier) and He (Kaiming) are presets with ``scale = gain²``, where the
gain comes from `calculate_gain` (√2 for ReLU, and so on).

`VarianceScaling` is also a `keras.initializers.VarianceScaling`, and takes
its ``input_axes`` / ``output_axes``: Keras's ``EinsumDense.build`` (and so
``MultiHeadAttention`` and ``GroupQueryAttention``) hands the kernel's axes
to such initializers, so every preset gets the right fans inside them.
"""

from __future__ import annotations

import math
from typing import List, Optional

import keras

from kinit.base import RandomInitializer, register, register_alias
from kinit.fans import FAN_MODES, check_axes, check_kernel_layout, fan_for_mode
from kinit.gains import calculate_gain
from kinit.random import TRUNCATED_2SIGMA_STD
from kinit.validation import check_choice, check_number

#: Accepted distribution names; "untruncated_normal" is Keras's name for "normal".
DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")
NORMAL_DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal")


@register
class VarianceScaling(RandomInitializer, keras.initializers.VarianceScaling):
    """Zero-mean values whose variance is `scale` divided by a fan.

    Formula: ``Var(W) = scale / n`` with ``n`` chosen by `mode`:
    ``fan_in``, ``fan_out`` or ``fan_avg = (fan_in + fan_out) / 2``
    (see `kinit.fans.compute_fans`; never less than 1). The fans come from
    `input_axes` / `output_axes` when given (``EinsumDense`` fills them in),
    otherwise from `kernel_layout`. By `distribution`:

    * ``"truncated_normal"``: N(0, σ²) truncated at ±2σ with
      ``σ = √(scale / n) / 0.8796``, so the variance after truncation is
      exactly ``scale / n`` (Keras's convention);
    * ``"normal"`` (alias ``"untruncated_normal"``): N(0, scale / n);
    * ``"uniform"``: U(−limit, limit) with ``limit = √(3 · scale / n)``.

    Examples:

    >>> # Standalone usage:
    >>> initializer = kinit.VarianceScaling(scale=2.0, mode="fan_in", distribution="normal", seed=0)
    >>> values = initializer(shape=(256, 128))

    >>> # Usage in a Keras layer (transposed convolutions store (…, out, in)):
    >>> init = kinit.VarianceScaling(2.0, kernel_layout="transposed")
    >>> layer = keras.layers.Conv2DTranspose(16, 3, kernel_initializer=init)

    >>> # EinsumDense and the attention layers hand over the axes themselves:
    >>> mha = keras.layers.MultiHeadAttention(8, 16, kernel_initializer=kinit.VarianceScaling(seed=0))

    Args:
        scale: the variance numerator, > 0.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"``, ``"normal"``,
            ``"untruncated_normal"`` or ``"uniform"``.
        kernel_layout: ``"standard"`` (Keras's ``(…, in, out)``),
            ``"transposed"`` (``(…, out, in)``), ``"depthwise"``
            (``(…, in, multiplier)``), or the equation of an
            ``EinsumDense`` kernel (``"ab,bcd->acd"``); decides how the fans
            are read (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes: None, or the kernel axes of the inputs (their sizes
            multiply into fan_in); give it with `output_axes`.
        output_axes: None, or the kernel axes of the outputs (fan_out).
            Keras's ``EinsumDense`` fills both in from its equation.

    Reference:
        jax.nn.initializers.variance_scaling; Keras `VarianceScaling`;
        Klambauer et al. 2017 and the papers of the presets below.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        kernel_layout: str = "standard",
        seed: Optional[int] = None,
        input_axes: Optional[List[int]] = None,
        output_axes: Optional[List[int]] = None,
    ):
        owner = type(self).__name__
        self.scale = check_number(owner, "scale", scale, minimum=0.0)
        self.mode = check_choice(owner, "mode", mode, FAN_MODES)
        self.distribution = check_choice(owner, "distribution", distribution, DISTRIBUTIONS)
        self.kernel_layout = check_kernel_layout(owner, kernel_layout)
        self.input_axes, self.output_axes = check_axes(owner, input_axes, output_axes)
        # Keras's VarianceScaling.__init__ is not called: kinit's seed
        # behaviour replaces Keras's; Keras reads the attributes set here.
        super().__init__(seed)

    def variance(self, shape) -> float:
        """The variance this initializer gives a kernel of `shape`."""
        return self.scale / fan_for_mode(shape, self.mode, self.kernel_layout, self.input_axes, self.output_axes)

    def generate(self, shape, dtype):
        variance = self.variance(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return self.uniform(shape, dtype, -limit, limit)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / TRUNCATED_2SIGMA_STD
            return self.truncated_normal(shape, dtype, 0.0, stddev)
        return self.normal(shape, dtype, 0.0, math.sqrt(variance))


class GainScaling(VarianceScaling):
    """Shared machinery of the LeCun / Glorot / He presets: ``scale = gain²``.

    The gain is either given directly (`gain`) or computed by
    `calculate_gain(nonlinearity, negative_slope)`. Subclasses set the
    defaults as class attributes.
    """

    default_nonlinearity = "linear"
    default_mode = "fan_in"
    default_distribution = "truncated_normal"
    distributions = NORMAL_DISTRIBUTIONS

    def __init__(
        self,
        gain: Optional[float] = None,
        nonlinearity: Optional[str] = None,
        negative_slope: Optional[float] = None,
        mode: Optional[str] = None,
        distribution: Optional[str] = None,
        kernel_layout: str = "standard",
        seed: Optional[int] = None,
        input_axes: Optional[List[int]] = None,
        output_axes: Optional[List[int]] = None,
    ):
        owner = type(self).__name__
        self.gain = check_number(owner, "gain", gain, minimum=0.0, allow_none=True)
        self.nonlinearity = nonlinearity
        self.negative_slope = check_number(owner, "negative_slope", negative_slope, allow_none=True)
        if self.gain is not None and (nonlinearity is not None or negative_slope is not None):
            raise ValueError(
                f"{owner}: give either `gain` or `nonlinearity`/`negative_slope`, "
                f"not both; received gain={gain!r}, nonlinearity={nonlinearity!r}, "
                f"negative_slope={negative_slope!r}."
            )
        distribution = self.default_distribution if distribution is None else distribution
        check_choice(owner, "distribution", distribution, self.distributions)
        super().__init__(
            scale=self.effective_gain() ** 2,
            mode=self.default_mode if mode is None else mode,
            distribution=distribution,
            kernel_layout=kernel_layout,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )

    def effective_gain(self) -> float:
        """The gain in use: `gain`, or the one of the nonlinearity."""
        if self.gain is not None:
            return self.gain
        nonlinearity = self.nonlinearity
        if nonlinearity is None:
            nonlinearity = "leaky_relu" if self.negative_slope is not None else self.default_nonlinearity
        if self.negative_slope is not None and nonlinearity != "leaky_relu":
            raise ValueError(
                f"{type(self).__name__}: argument `negative_slope` applies only to "
                f"nonlinearity='leaky_relu'; received nonlinearity={nonlinearity!r}, "
                f"negative_slope={self.negative_slope!r}."
            )
        try:
            return calculate_gain(nonlinearity, self.negative_slope)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}: {error}") from None


class UniformGainScaling(GainScaling):
    default_distribution = "uniform"
    distributions = ("uniform",)


@register
class LecunNormal(GainScaling):
    """LeCun normal: variance ``gain² / fan_in``, gain 1 by default.

    Formula: ``W ~ N(0, σ²)`` truncated at ±2σ, rescaled so that
    ``Var(W) = gain² / fan_in``. With SELU activations this is the
    self-normalizing initialization.

    Examples:

    >>> values = kinit.LecunNormal(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, activation="selu", kernel_initializer=kinit.LecunNormal())

    Args:
        gain: the gain; or give `nonlinearity` (and `negative_slope`) instead.
        nonlinearity: a name known to `calculate_gain`; default ``"linear"``.
        negative_slope: the slope of a leaky ReLU (implies ``"leaky_relu"``).
        mode: ``"fan_in"`` (default), ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (default) or ``"normal"``.
        kernel_layout: ``"standard"``, ``"transposed"``, ``"depthwise"`` or an
            ``EinsumDense`` equation (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes, output_axes: None, or the kernel axes of the inputs and
            outputs, as in `VarianceScaling` (``EinsumDense`` fills them in).

    Reference:
        LeCun et al. 1998, "Efficient BackProp"; Klambauer et al. 2017,
        "Self-Normalizing Neural Networks".
    """


@register
class LecunUniform(UniformGainScaling):
    """LeCun uniform: ``U(−limit, limit)``, ``limit = gain · √(3 / fan_in)``.

    Formula: ``Var(W) = gain² / fan_in`` with a uniform distribution.

    Examples:

    >>> values = kinit.LecunUniform(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, kernel_initializer=kinit.LecunUniform())

    Args:
        gain, nonlinearity, negative_slope, mode, kernel_layout, seed,
            input_axes, output_axes: as in `LecunNormal`; `distribution` is
            ``"uniform"``.

    Reference:
        LeCun et al. 1998, "Efficient BackProp".
    """


@register
class GlorotNormal(GainScaling):
    """Glorot (Xavier) normal: variance ``2 · gain² / (fan_in + fan_out)``.

    Formula: ``W ~ N(0, σ²)`` truncated at ±2σ, rescaled so that
    ``Var(W) = gain² · 2 / (fan_in + fan_out)``; pass
    ``distribution="normal"`` for torch's untruncated ``xavier_normal_``.
    Suits tanh (``nonlinearity="tanh"`` applies torch's gain 5/3), sigmoid
    and linear layers.

    Examples:

    >>> values = kinit.GlorotNormal(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, activation="tanh", kernel_initializer=kinit.GlorotNormal())

    Args:
        gain: the gain; or give `nonlinearity` (and `negative_slope`) instead.
        nonlinearity: a name known to `calculate_gain`; default ``"linear"``.
        negative_slope: the slope of a leaky ReLU (implies ``"leaky_relu"``).
        mode: ``"fan_avg"`` (default), ``"fan_in"`` or ``"fan_out"``.
        distribution: ``"truncated_normal"`` (default) or ``"normal"``.
        kernel_layout: ``"standard"``, ``"transposed"``, ``"depthwise"`` or an
            ``EinsumDense`` equation (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes, output_axes: None, or the kernel axes of the inputs and
            outputs, as in `VarianceScaling` (``EinsumDense`` fills them in).

    Reference:
        Glorot & Bengio 2010, "Understanding the difficulty of training deep
        feedforward neural networks".
    """

    default_mode = "fan_avg"


@register
class GlorotUniform(UniformGainScaling):
    """Glorot (Xavier) uniform: ``limit = gain · √(6 / (fan_in + fan_out))``.

    Formula: ``W ~ U(−limit, limit)``, so ``Var(W) = 2 · gain² /
    (fan_in + fan_out)``. Keras's default kernel initializer (gain 1).

    Examples:

    >>> values = kinit.GlorotUniform(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, kernel_initializer=kinit.GlorotUniform())

    Args:
        gain, nonlinearity, negative_slope, kernel_layout, seed, input_axes,
            output_axes: as in `GlorotNormal`; `mode` defaults to
            ``"fan_avg"``; `distribution` is ``"uniform"``.

    Reference:
        Glorot & Bengio 2010.
    """

    default_mode = "fan_avg"


@register
class HeNormal(GainScaling):
    """He (Kaiming) normal: variance ``gain² / fan``, ReLU gain √2 by default.

    Formula: ``W ~ N(0, σ²)`` truncated at ±2σ, rescaled so that
    ``Var(W) = gain² / fan_in`` (``2 / fan_in`` for ReLU;
    ``2 / ((1 + a²) fan_in)`` for a leaky ReLU of slope ``a``). Pass
    ``distribution="normal"`` for torch's untruncated ``kaiming_normal_``.

    Examples:

    >>> values = kinit.HeNormal(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, activation="relu", kernel_initializer=kinit.HeNormal())
    >>> leaky = kinit.HeNormal(nonlinearity="leaky_relu", negative_slope=0.2, mode="fan_out")

    Args:
        gain: the gain; or give `nonlinearity` (and `negative_slope`) instead.
        nonlinearity: a name known to `calculate_gain`; default ``"relu"``.
        negative_slope: the slope of a leaky ReLU (implies ``"leaky_relu"``).
        mode: ``"fan_in"`` (default, preserves the forward signal),
            ``"fan_out"`` (preserves the backward signal) or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (default) or ``"normal"``.
        kernel_layout: ``"standard"``, ``"transposed"``, ``"depthwise"`` or an
            ``EinsumDense`` equation (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes, output_axes: None, or the kernel axes of the inputs and
            outputs, as in `VarianceScaling` (``EinsumDense`` fills them in).

    Reference:
        He et al. 2015, "Delving Deep into Rectifiers: Surpassing Human-Level
        Performance on ImageNet Classification".
    """

    default_nonlinearity = "relu"


@register
class HeUniform(UniformGainScaling):
    """He (Kaiming) uniform: ``limit = gain · √(3 / fan)``, gain √2 by default.

    Formula: ``W ~ U(−limit, limit)``, ``Var(W) = gain² / fan_in``
    (``limit = √(6 / fan_in)`` for ReLU).

    Examples:

    >>> values = kinit.HeUniform(seed=0)(shape=(256, 128))
    >>> layer = keras.layers.Dense(64, activation="relu", kernel_initializer=kinit.HeUniform())

    Args:
        gain, nonlinearity, negative_slope, mode, kernel_layout, seed,
            input_axes, output_axes: as in `HeNormal`; `distribution` is
            ``"uniform"``.

    Reference:
        He et al. 2015.
    """

    default_nonlinearity = "relu"


class FanInScaling(VarianceScaling):
    """Shared machinery of the fixed 1/√fan_in recipes (no gain to choose)."""

    preset_scale = 1.0
    preset_distribution = "normal"

    def __init__(
        self,
        kernel_layout: str = "standard",
        seed: Optional[int] = None,
        input_axes: Optional[List[int]] = None,
        output_axes: Optional[List[int]] = None,
    ):
        super().__init__(
            scale=self.preset_scale,
            mode="fan_in",
            distribution=self.preset_distribution,
            kernel_layout=kernel_layout,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )


@register
class FanInUniform(FanInScaling):
    """Uniform on ``±1/√fan_in``: the "uniform with a careful tweak" recipe.

    Formula: ``W ~ U(−1/√fan_in, 1/√fan_in)``, so ``Var(W) = 1 / (3 fan_in)``.
    This is also PyTorch's default for ``nn.Linear`` and ``nn.Conv*``
    weights (``kaiming_uniform_`` with ``a = √5``).

    Examples:

    >>> values = kinit.FanInUniform(seed=0)(shape=(784, 256))
    >>> layer = keras.layers.Dense(256, kernel_initializer=kinit.FanInUniform())

    Args:
        kernel_layout: ``"standard"``, ``"transposed"``, ``"depthwise"`` or an
            ``EinsumDense`` equation (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes, output_axes: None, or the kernel axes of the inputs and
            outputs, as in `VarianceScaling` (``EinsumDense`` fills them in).

    Reference:
        LeCun et al. 1998, "Efficient BackProp"; the FashionMNIST
        initialization comparison (method 4).
    """

    preset_scale = 1.0 / 3.0
    preset_distribution = "uniform"


@register
class FanInNormal(FanInScaling):
    """Normal with ``σ = 1/√fan_in``: the "normal with a careful tweak" recipe.

    Formula: ``W ~ N(0, 1 / fan_in)`` (untruncated).

    Examples:

    >>> values = kinit.FanInNormal(seed=0)(shape=(784, 256))
    >>> layer = keras.layers.Dense(256, kernel_initializer=kinit.FanInNormal())

    Args:
        kernel_layout: ``"standard"``, ``"transposed"``, ``"depthwise"`` or an
            ``EinsumDense`` equation (see `kinit.fans`).
        seed: None or an int (successive calls of one instance differ).
        input_axes, output_axes: None, or the kernel axes of the inputs and
            outputs, as in `VarianceScaling` (``EinsumDense`` fills them in).

    Reference:
        LeCun et al. 1998; the FashionMNIST initialization comparison
        (method 5).
    """


# The names torch and the papers' second authors use; ``"kinit>XavierNormal"``
# and the others resolve too, while the classes save under their own names.
XavierNormal = register_alias("XavierNormal", GlorotNormal)
XavierUniform = register_alias("XavierUniform", GlorotUniform)
KaimingNormal = register_alias("KaimingNormal", HeNormal)
KaimingUniform = register_alias("KaimingUniform", HeUniform)
