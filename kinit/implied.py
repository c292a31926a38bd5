"""What an initializer implies for a tensor of a given shape.

`implied(initializer, shape, dtype)` says what the values an initializer
drew must look like, so that `kinit.audit` can check a variable against it:

* **exact** values for the deterministic schemes: kinit's `Constant`,
  `Zeros`, `Ones`, `Identity`, `Dirac`, `ZerO` and Keras's `Zeros`, `Ones`,
  `Constant`, `Identity`, `STFT` (computed by calling the initializer, which
  draws nothing);
* **structure** for the orthogonal schemes: ``WᵀW = g²I`` (or ``WWᵀ``) of the
  flattened kernel for kinit's and Keras's `Orthogonal`; the centre tap
  orthogonal and every other tap zero for `DeltaOrthogonal`; ``W(ω)W(ω)* =
  g²I`` at every frequency for `ConvolutionOrthogonal`; exactly
  ``⌈sparsity · n⌉`` zeros per unit for `Sparse`;
* a **distribution** for the random schemes: its mean, std, kurtosis (for the
  standard error of the sample variance) and bounds. kinit's
  `VarianceScaling` family reads its own fans (`variance(shape)`, in its
  kernel layout or from the axes an EinsumDense handed over); Keras's
  `VarianceScaling` family reads Keras's fans (the standard layout, or the
  axes). Keras's `RandomNormal`, `RandomUniform`, `TruncatedNormal` and
  kinit's `RandomNormal`, `ScaledNormal`, `RandomUniform`, `TruncatedNormal`
  have fixed parameters.

Anything else (a custom function, `ConvolutionAware`, an unknown class) is
``UNKNOWN``, with the reason: no check is invented for it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import keras
import numpy as np

from kinit.base import KinitInitializer
from kinit.fans import FAN_MODES, compute_fans, fan_for_mode
from kinit.orthogonal import ConvolutionOrthogonal, DeltaOrthogonal
from kinit.orthogonal import Orthogonal as KinitOrthogonal
from kinit.random import TRUNCATED_2SIGMA_STD, RandomNormal, RandomUniform, TruncatedNormal
from kinit.sparse import Sparse
from kinit.variance import VarianceScaling

#: `Implied.check`: the values must equal `Implied.values`.
EXACT = "exact"
#: the flattened kernel has orthonormal columns (or rows) times the gain.
ORTHOGONAL = "orthogonal"
#: the centre tap is orthogonal times the gain, every other tap is zero.
DELTA_ORTHOGONAL = "delta orthogonal"
#: the convolution's transfer matrix is orthogonal times the gain at every frequency.
CONVOLUTION_ORTHOGONAL = "convolution orthogonal"
#: ⌈sparsity · n⌉ exact zeros per unit, the rest normal.
SPARSE = "sparse"
#: the values are draws of a distribution (mean, std, kurtosis, bounds).
RANDOM = "random"
#: no model of what the initializer draws.
UNKNOWN = "unknown"

#: P(|Z| > 2) for a standard normal Z: the probability that one try of a
#: rejection sampler truncating at ±2σ misses.
_MISS_2SIGMA = math.erfc(2.0 / math.sqrt(2.0))
#: Keras's torch backend draws a truncated normal from 4 tries and keeps the
#: first one when all 4 miss: that value lies outside ±2σ.
KERAS_TORCH_TRUNCATED_STRAY = _MISS_2SIGMA**4
#: The constant Keras's VarianceScaling divides by for its truncated normal.
KERAS_TRUNCATED_STD = 0.87962566103423978

_KERAS_DETERMINISTIC = (
    keras.initializers.Zeros,
    keras.initializers.Ones,
    keras.initializers.Constant,
    keras.initializers.Identity,
    keras.initializers.STFT,
)


@dataclass
class Implied:
    """What the values of one tensor must look like (see the module docstring).

    Attributes:
        check: `EXACT`, `ORTHOGONAL`, `DELTA_ORTHOGONAL`,
            `CONVOLUTION_ORTHOGONAL`, `SPARSE`, `RANDOM` or `UNKNOWN`.
        mean, std: the mean and std the values have (in expectation; for the
            structured schemes those of their entries).
        kurtosis: E[(x − μ)⁴] / σ⁴ of the distribution (3 normal, 1.8 uniform).
        bounds: ``(low, high)`` that every value lies in, if any.
        stray: the probability that one value lies outside `bounds` all the
            same (Keras's truncated normal on the torch backend).
        values: the exact values (`EXACT`).
        gain: the gain of the orthogonal schemes.
        zeros_per_unit: `SPARSE`: the exact number of zeros per unit.
        fans: ``(fan_in, fan_out)`` the initializer read, if it reads fans.
        why: for `UNKNOWN`, why there is no model.
    """

    check: str
    mean: Optional[float] = None
    std: Optional[float] = None
    kurtosis: Optional[float] = None
    bounds: Optional[Tuple[float, float]] = None
    stray: float = 0.0
    values: Optional[np.ndarray] = None
    gain: Optional[float] = None
    zeros_per_unit: Optional[int] = None
    fans: Optional[Tuple[int, int]] = None
    why: str = ""


class Rescaled:
    """A rule's values multiplied by `factor` afterwards (what `kinit.lsuv`
    does to a kernel): every implied quantity scales with it."""

    def __init__(self, base, factor: float):
        self.base, self.factor = base, float(factor)

    def __repr__(self) -> str:
        return f"{describe(self.base)} × {self.factor:.6g}"


def implied(initializer, shape: Sequence[int], dtype: str = "float32",
            einsum_axes: Optional[Tuple[list, list]] = None) -> Implied:
    """What `initializer` implies for a tensor of `shape` and `dtype`.

    `einsum_axes`: ``(input_axes, output_axes)`` an ``EinsumDense`` hands to a
    `keras.initializers.VarianceScaling` (kinit's included) that has none of
    its own when it builds its kernel.
    """
    shape = tuple(int(d) for d in shape)
    if isinstance(initializer, Rescaled):
        return _rescaled(implied(initializer.base, shape, dtype, einsum_axes), initializer.factor)
    if is_deterministic(initializer):
        try:
            values = keras.ops.convert_to_numpy(initializer(shape, dtype=dtype))
        except Exception as error:  # a shape the scheme cannot fill: it did not fill it
            return Implied(UNKNOWN, why=f"{describe(initializer)} cannot fill shape {shape} "
                                        f"({type(error).__name__}: {error})")
        values = np.asarray(values, dtype="float64")
        mean, std = (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)
        return Implied(EXACT, mean, std, values=values)
    if isinstance(initializer, keras.initializers.VarianceScaling):
        return _variance_scaling(initializer, shape, einsum_axes)
    if isinstance(initializer, (KinitOrthogonal, keras.initializers.Orthogonal)):
        if len(shape) < 2:
            return Implied(UNKNOWN, why=f"{describe(initializer)} cannot fill shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        gain = float(initializer.gain)
        return Implied(ORTHOGONAL, 0.0, gain * math.sqrt(min(rows, cols) / (rows * cols)), gain=gain)
    if isinstance(initializer, (DeltaOrthogonal, ConvolutionOrthogonal)):
        if len(shape) < 3 or shape[-2] > shape[-1]:
            return Implied(UNKNOWN, why=f"{describe(initializer)} cannot fill shape {shape}")
        check = DELTA_ORTHOGONAL if isinstance(initializer, DeltaOrthogonal) else CONVOLUTION_ORTHOGONAL
        gain = float(initializer.gain)
        return Implied(check, 0.0, gain * math.sqrt(shape[-2] / math.prod(shape)), gain=gain)
    if isinstance(initializer, Sparse):
        fan_in = math.prod(shape[:-1]) if len(shape) >= 2 else 0
        if fan_in == 0:
            return Implied(UNKNOWN, why=f"{describe(initializer)} cannot fill shape {shape}")
        zeros = initializer.zeros_per_unit(fan_in)
        kept = 1.0 - zeros / fan_in
        return Implied(SPARSE, 0.0, initializer.stddev * math.sqrt(kept), kurtosis=3.0 / kept if kept else None,
                       zeros_per_unit=zeros)
    if isinstance(initializer, (RandomNormal, keras.initializers.RandomNormal)):
        return normal(initializer.mean, initializer.stddev)
    if isinstance(initializer, (RandomUniform, keras.initializers.RandomUniform)):
        return uniform(initializer.minval, initializer.maxval)
    if isinstance(initializer, TruncatedNormal):
        mean, stddev = initializer.mean, initializer.stddev
        low = mean - 2.0 * stddev if initializer.minval is None else initializer.minval
        high = mean + 2.0 * stddev if initializer.maxval is None else initializer.maxval
        return truncated_normal(mean, stddev, low, high)
    if isinstance(initializer, keras.initializers.TruncatedNormal):
        mean, stddev = initializer.mean, initializer.stddev
        return keras_truncated_normal(mean, stddev)
    return Implied(UNKNOWN, why=f"kinit has no model of what {describe(initializer)} draws")


def is_deterministic(initializer) -> bool:
    """Whether calling `initializer` draws nothing: its values are its definition."""
    from kinit.rules import forget_gate_bias  # kinit.rules imports the schemes this module reads

    if initializer is forget_gate_bias or isinstance(initializer, ForgetGateBias):
        return initializer is forget_gate_bias or is_deterministic(initializer.inner)
    if isinstance(initializer, KinitInitializer):
        return not hasattr(initializer, "next_seed")
    return isinstance(initializer, _KERAS_DETERMINISTIC)


class ForgetGateBias:
    """The bias an LSTM cell with ``unit_forget_bias=True`` builds: its
    `bias_initializer` for the gates i, c, o and ones for the forget gate."""

    def __init__(self, inner, units: int):
        self.inner, self.units = inner, units

    def __call__(self, shape, dtype=None):
        parts = [self.inner((self.units,), dtype=dtype), keras.ops.ones((self.units,), dtype=dtype),
                 self.inner((2 * self.units,), dtype=dtype)]
        return keras.ops.concatenate(parts)

    def __repr__(self) -> str:
        return f"{describe(self.inner)} with forget gate 1 (unit_forget_bias)"


def _rescaled(found: Implied, factor: float) -> Implied:
    if found.check == UNKNOWN:
        return found
    scaled = dataclasses.replace(found)
    for name in ("mean", "values", "gain"):
        if getattr(found, name) is not None:
            setattr(scaled, name, getattr(found, name) * factor)
    if found.std is not None:
        scaled.std = found.std * abs(factor)
    if found.bounds is not None:
        scaled.bounds = tuple(sorted(bound * factor for bound in found.bounds))
    if scaled.gain is not None and scaled.gain < 0:  # −g·Q is orthogonal times g too
        scaled.gain = -scaled.gain
    return scaled


def normal(mean: float, stddev: float) -> Implied:
    return Implied(RANDOM, float(mean), float(stddev), kurtosis=3.0)


def uniform(low: float, high: float) -> Implied:
    return Implied(RANDOM, (low + high) / 2.0, (high - low) / math.sqrt(12.0), kurtosis=1.8,
                   bounds=(float(low), float(high)))


def truncated_normal(mean: float, stddev: float, low: float, high: float) -> Implied:
    """N(mean, stddev²) conditioned on [low, high]: its moments from the
    moments of a truncated standard normal."""
    if stddev == 0:
        return Implied(RANDOM, float(mean), 0.0, kurtosis=3.0, bounds=(float(low), float(high)))
    m1, m2, m3, m4 = truncated_standard_moments((low - mean) / stddev, (high - mean) / stddev)
    variance = m2 - m1**2
    central4 = m4 - 4 * m3 * m1 + 6 * m2 * m1**2 - 3 * m1**4
    return Implied(RANDOM, mean + stddev * m1, stddev * math.sqrt(variance), kurtosis=central4 / variance**2,
                   bounds=(float(low), float(high)))


def keras_truncated_normal(mean: float, stddev: float) -> Implied:
    """Keras's truncated normal (±2 stddev); on the torch backend a value lies
    outside with probability `KERAS_TORCH_TRUNCATED_STRAY`."""
    found = truncated_normal(mean, stddev, mean - 2.0 * stddev, mean + 2.0 * stddev)
    if keras.backend.backend() == "torch":
        found.stray = KERAS_TORCH_TRUNCATED_STRAY
    return found


def truncated_standard_moments(alpha: float, beta: float) -> Tuple[float, float, float, float]:
    """E[Z], E[Z²], E[Z³], E[Z⁴] of a standard normal Z conditioned on [α, β].

    By the recurrence E[Z^k] = (k − 1) E[Z^(k−2)] − (β^(k−1) φ(β) − α^(k−1) φ(α)) / P,
    P = Φ(β) − Φ(α) (integration by parts of z^(k−1) · z φ(z)).
    """
    def pdf(z):
        return 0.0 if math.isinf(z) else math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    def power_pdf(z, k):
        return 0.0 if math.isinf(z) else z ** k * pdf(z)

    mass = 0.5 * (math.erf(beta / math.sqrt(2.0)) - math.erf(alpha / math.sqrt(2.0)))
    moments = [1.0, -(pdf(beta) - pdf(alpha)) / mass]
    for k in range(2, 5):
        moments.append((k - 1) * moments[k - 2] - (power_pdf(beta, k - 1) - power_pdf(alpha, k - 1)) / mass)
    return moments[1], moments[2], moments[3], moments[4]


def _variance_scaling(initializer, shape: Tuple[int, ...], einsum_axes) -> Implied:
    input_axes, output_axes = initializer.input_axes, initializer.output_axes
    if (input_axes is None or output_axes is None) and einsum_axes is not None:
        input_axes, output_axes = einsum_axes
    mode = initializer.mode
    if mode not in FAN_MODES:
        return Implied(UNKNOWN, why=f"{describe(initializer)} has an unknown mode {mode!r}")
    if isinstance(initializer, VarianceScaling):  # kinit's: its own kernel layout
        layout = initializer.kernel_layout
    else:  # Keras's: the standard layout
        layout = "standard"
    fans = compute_fans(shape, layout, input_axes, output_axes)
    variance = initializer.scale / fan_for_mode(shape, mode, layout, input_axes, output_axes)
    distribution = initializer.distribution
    if distribution == "uniform":
        found = uniform(-math.sqrt(3.0 * variance), math.sqrt(3.0 * variance))
    elif distribution == "truncated_normal":
        if isinstance(initializer, VarianceScaling):
            stddev = math.sqrt(variance) / TRUNCATED_2SIGMA_STD
            found = truncated_normal(0.0, stddev, -2.0 * stddev, 2.0 * stddev)
        else:
            found = keras_truncated_normal(0.0, math.sqrt(variance) / KERAS_TRUNCATED_STD)
    elif distribution in ("normal", "untruncated_normal"):
        found = normal(0.0, math.sqrt(variance))
    else:
        return Implied(UNKNOWN, why=f"{describe(initializer)} has an unknown distribution {distribution!r}")
    found.fans = fans
    return found


def describe(initializer) -> str:
    """``kinit.HeNormal(gain=2.0)`` / ``keras.GlorotUniform()``: the class and the
    arguments that differ from its defaults (never the seed)."""
    if isinstance(initializer, (ForgetGateBias, Rescaled)):
        return repr(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return getattr(initializer, "__qualname__", None) or type(initializer).__name__
    cls = type(initializer)
    name = cls.__name__ if cls.__name__.startswith("kinit.") else f"keras.{cls.__name__}"
    try:
        config = initializer.get_config()
    except Exception:  # a custom class without a config: its name says enough
        return name
    try:  # the defaults as the class resolves them (kinit's presets fill in mode and distribution)
        defaults = dict(cls().get_config())
    except Exception:
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
    shown = [f"{key}={_short(value)}" for key, value in config.items()
             if key != "seed" and not (key in defaults and _same(defaults[key], value))]
    return f"{name}({', '.join(shown)})"


def _same(default, value) -> bool:
    try:
        return bool(default == value)
    except Exception:  # arrays: compare nothing, show the value
        return False


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
