"""`kinit.audit(model)`: was the initialization you meant really applied?

For every weight of a built model, `audit` finds the rule that should have
made its values, says what that rule implies for the weight's shape
(`kinit.implied`), measures the values, and gives a verdict:

* **the rule**: the one `kinit.initialize` last applied to that very
  variable (recorded per model, see `kinit.applied`: any policy, ``"auto"``,
  a map, a scheme, a registered recipe; after `kinit.lsuv`, that rule or
  the orthogonal one times its rescalings), else the initializer the layer
  declares (``layer.kernel_initializer`` and the like, with the fans Keras
  gives it: an ``EinsumDense`` hands its axes to a ``VarianceScaling``, an
  LSTM cell with ``unit_forget_bias`` sets its forget-gate bias to 1);
  a weight with neither is listed as ``"no rule"``.
* **exact checks** where the rule leaves no randomness: constants, identity,
  Dirac and ZerO values elementwise within the dtype's rounding; orthogonal
  kernels by ``WᵀW = g²I`` (or ``WWᵀ``) within float tolerance; the bounds
  of uniform and truncated-normal draws; the zeros per unit of `Sparse`.
* **statistical checks** where it draws: the sample mean must lie within
  ``k`` standard errors ``σ/√n`` of the implied mean, and the sample
  variance within ``k`` standard errors of the implied variance, where the
  variance's standard error ``σ²·√((κ − 1)/n)`` comes from the kurtosis κ of
  the distribution (3 normal, 1.8 uniform, 2.37 for a normal truncated at
  ±2σ). The variance is compared on the Wilson–Hilferty scale (its cube
  root, which is nearly normal even for few values), where its standard
  error is that same one (`variance_z`); for many values the two agree.

**k = 6 by default.** A variable whose values were drawn from its rule fails
one check with probability 2·10⁻⁹ (two-sided normal tail at 6), so at most
4·10⁻⁹ per random variable: auditing a model of 100 random variables 20
times raises a false alarm with probability below 10⁻⁵. A std that is off
by a factor f (a projection drawn with σ = 0.02 where 0.02/√R was meant)
gives z ≈ (f^(2/3) − 1)·√(9n/2): for R = 2 a kernel of 4096 values is
caught at z ≈ 25, for R = 4 at z ≈ 56.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import keras
import numpy as np

from kinit import applied, implied as implied_module
from kinit.fans import compute_fans, equation_axes
from kinit.implied import (
    CONVOLUTION_ORTHOGONAL,
    DELTA_ORTHOGONAL,
    EXACT,
    ORTHOGONAL,
    RANDOM,
    SPARSE,
    UNKNOWN,
    ForgetGateBias,
    Implied,
    describe,
)
from kinit.kernel_shapes import centre_taps
from kinit.layer_kinds import DEPTHWISE, KERNEL_WEIGHTS, kernel_layout
from kinit.inputs import read_batch
from kinit.model_map import map_model, require_built
from kinit.report import Report, text_table
from kinit.validation import check_number

OWNER = "audit"
DEFAULT_K = 6.0
#: Examples of `x` used to trace a model (as `kinit.initialize`: two are enough).
MAX_EXAMPLES = 16

#: `AuditRow.verdict` values.
MATCHES = "matches"
DIFFERS = "differs"
NO_RULE = "no rule"
NOT_CHECKED = "not checked"

#: `AuditRow.source` values besides those `kinit.applied` records (``"initialize"``, ``"lsuv"``).
DECLARED = "declared"
NONE = "none"

#: Weights Keras layers create with a fixed initializer (no attribute names it).
_BUILT_WITH = (
    (keras.layers.RMSNormalization, "scale", "ones"),
    (keras.layers.Attention, "scale", "ones"),
    (keras.layers.Attention, "concat_score_weight", "ones"),
    (keras.layers.AdditiveAttention, "scale", "glorot_uniform"),
)

#: Machine epsilon of each float dtype (bfloat16 keeps 8 significant bits).
_EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
#: Smallest normal number of each float dtype.
_TINY = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}


@dataclass
class AuditRow:
    """One weight of an `audit` report.

    Attributes:
        path: the layer's path in the model (as in `kinit.initialize`'s report).
        weight: the weight's name (``kernel``, ``bias``, ``gamma``, …).
        shape: its shape.
        layout: the kernel layout its fans are read in (``standard``,
            ``transposed``, ``depthwise`` or an EinsumDense equation); None
            for weights of rank < 2 that are not kernels.
        fan_in, fan_out: its fans in that layout (`kinit.compute_fans`).
        source: ``"initialize"`` (the rule `kinit.initialize` last applied),
            ``"lsuv"`` (that rule, or the orthogonal one, times the
            rescalings `kinit.lsuv` made), ``"declared"`` (the layer's own
            initializer) or ``"none"``.
        rule: the initializer, ``Class(arguments that differ from the defaults)``.
        expected_mean, expected_std: what the rule implies for this shape.
        mean, std: measured over the weight's values (std with ddof 0).
        verdict: ``"matches"``, ``"differs"``, ``"no rule"`` (nothing says
            how it was meant to start) or ``"not checked"`` (a rule kinit
            has no model of).
        detail: what was checked and how far off it is.
        check: ``"exact"``, ``"orthogonal"``, ``"delta orthogonal"``,
            ``"convolution orthogonal"``, ``"sparse"``, ``"random"`` or
            ``"unknown"``.
        reason: why this rule (initialize's reason, or the attribute read).
        layer_class: the class name of the layer that owns the weight.
        dtype: the weight's dtype.
        z_mean, z_std: for the statistical checks, how many standard errors
            the sample mean and variance lie from the rule's (the variance on
            the Wilson–Hilferty scale); a check fails when ``|z| > k``.
    """

    path: str
    weight: str
    shape: Tuple[int, ...]
    layout: Optional[str]
    fan_in: Optional[int]
    fan_out: Optional[int]
    source: str
    rule: str
    expected_mean: Optional[float]
    expected_std: Optional[float]
    mean: Optional[float]
    std: Optional[float]
    verdict: str
    detail: str
    check: str = ""
    reason: str = ""
    layer_class: str = ""
    dtype: str = ""
    z_mean: Optional[float] = None
    z_std: Optional[float] = None

    @property
    def variable_path(self) -> str:
        """``<layer path>/<weight>``."""
        return f"{self.path}/{self.weight}"


class AuditReport(Report):
    """The rows of `audit`, one per weight, in the order the layers run.

    Attributes:
        k: the number of standard errors the statistical checks allow.
        notes: what the model map could not trace (the paths are still
            exact; only the run order may be the order the layers were found).
    """

    columns = ("path", "weight", "shape", "layout", "fan_in", "fan_out", "source", "rule",
               "expected_mean", "expected_std", "mean", "std", "verdict")

    def __init__(self, rows=(), k: float = DEFAULT_K, notes=()):
        super().__init__(rows)
        self.k = k
        self.notes = list(notes)

    @property
    def rows(self) -> List[AuditRow]:
        return list(self)

    @property
    def mismatches(self) -> List[AuditRow]:
        """The weights whose values differ from their rule."""
        return [row for row in self if row.verdict == DIFFERS]

    @property
    def unexplained(self) -> List[AuditRow]:
        """The weights no rule explains (no rule, or one kinit cannot check)."""
        return [row for row in self if row.verdict in (NO_RULE, NOT_CHECKED)]

    @property
    def ok(self) -> bool:
        """No weight differs from its rule."""
        return not self.mismatches

    def __str__(self) -> str:
        lines = [text_table([list(self.columns)] + self.cells()), ""]
        if self.mismatches:
            lines += [f"! {row.variable_path}: {row.detail}" for row in self.mismatches]
        else:
            checked = sum(row.verdict == MATCHES for row in self)
            lines.append(f"Every checked weight matches its rule ({checked} weights, k = {self.k:g}).")
        lines += [f"? {row.variable_path}: {row.detail}" for row in self.unexplained]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"AuditReport({len(self)} rows, {len(self.mismatches)} mismatches)"


def audit(model: keras.Model, *, k: float = DEFAULT_K, x=None) -> AuditReport:
    """Check every weight of a built model against the rule meant for it.

    Example:

    >>> kinit.initialize(model, seed=0)
    >>> model.get_layer("dense_1").kernel.assign(np.zeros((256, 128)))   # a mistake
    >>> report = kinit.audit(model)
    >>> [row.variable_path for row in report.mismatches]
    ['dense_1/kernel']
    >>> print(report)   # the table, then one line per mismatch and per unexplained weight

    Args:
        model: a built Keras model, initialized by Keras (its layers'
            initializers), by hand, or by `kinit.initialize` (whose rules
            are remembered per model and take precedence).
        k: how many standard errors a sample mean or variance may be off
            before its weight "differs" (see the module docstring for the
            false-alarm rate of the default 6).
        x: optional inputs for a subclassed model built by calling it on
            data (as for `kinit.initialize`); only the run order of the rows
            depends on it.

    Returns:
        An `AuditReport` of `AuditRow`: ``.mismatches``, ``.unexplained``,
        ``.ok``, ``print(report)``, ``to_dataframe()``.

    Reference:
        The standard errors of the sample mean and variance: Kendall &
        Stuart, "The Advanced Theory of Statistics", Vol. 1, §10.5; the
        cube-root scale: Wilson & Hilferty 1931, "The distribution of
        chi-square".
    """
    require_built(model, OWNER)
    k = check_number(OWNER, "k", k, minimum=0.0)
    if x is not None:
        x = read_batch(OWNER, x, "x", MAX_EXAMPLES).x
    model_map = map_model(model, x)
    rules = applied.applied_rules([record.layer for record in model_map.records])
    report = AuditReport(k=k, notes=model_map.notes)
    seen = set()
    for record in model_map.records:
        for weight in record.own_weights:
            if id(weight) in seen:
                continue
            seen.add(id(weight))
            recorded = rules.get(id(weight))
            if recorded is not None and recorded.variable is not weight:
                recorded = None
            report.append(_audit_weight(record, weight, recorded, k))
    return report


def declared_initializer(layer, weight_name: str):
    """``(initializer, where)``: the initializer `layer` builds `weight_name`
    with, and the attribute (or fixed rule) it was read from; None if none."""
    for cls, name, fixed in _BUILT_WITH:
        if isinstance(layer, cls) and weight_name == name:
            return keras.initializers.get(fixed), f"{type(layer).__name__} builds {name} with {fixed!r}"
    candidates = [f"{weight_name}_initializer"]
    if weight_name.endswith("_kernel"):  # depthwise_kernel, pointwise_kernel, recurrent_kernel
        candidates.append(weight_name[: -len("_kernel")] + "_initializer")
    if weight_name == "kernel" and isinstance(layer, DEPTHWISE):
        candidates.append("depthwise_initializer")
    for attribute in candidates:
        value = getattr(layer, attribute, None)
        if value is None:
            continue
        initializer = keras.initializers.get(value) if isinstance(value, (str, dict)) else value
        where = f"{type(layer).__name__}.{attribute}"
        if (attribute == "bias_initializer" and isinstance(layer, keras.layers.LSTMCell)
                and getattr(layer, "unit_forget_bias", False)):
            return ForgetGateBias(initializer, layer.units), f"{where} and unit_forget_bias=True"
        return initializer, where
    return None


def _audit_weight(record, weight, recorded, k: float) -> AuditRow:
    layer, name = record.layer, weight.name
    shape = tuple(int(d) for d in weight.shape)
    dtype = keras.backend.standardize_dtype(weight.dtype)
    layout = fans = None
    if name in KERNEL_WEIGHTS or (len(shape) >= 2 and name != "bias"):
        layout = kernel_layout(layer, name)
        fans = _fans(shape, layout)
    row = AuditRow(record.path, name, shape, layout, *(fans or (None, None)), source=NONE, rule="",
                   expected_mean=None, expected_std=None, mean=None, std=None, verdict=NO_RULE, detail="",
                   layer_class=record.layer_class, dtype=dtype)
    values = None
    if "float" in dtype:
        values = np.asarray(keras.ops.convert_to_numpy(weight.value), dtype="float64")
        finite = values[np.isfinite(values)]
        if finite.size:
            row.mean, row.std = float(finite.mean()), float(finite.std())
    if recorded is not None:
        initializer, row.source, row.reason = recorded.row.initializer, recorded.source, recorded.row.reason
    else:
        found = declared_initializer(layer, name)
        if found is None:
            row.detail = "neither kinit.initialize nor the layer says how it starts"
            if values is None:
                row.detail = f"a {dtype} variable; {row.detail}"
            return row
        (initializer, row.reason), row.source = found, DECLARED
    row.rule = describe(initializer)
    if values is None:
        row.verdict, row.check = NOT_CHECKED, UNKNOWN
        row.detail = f"a {dtype} variable: kinit checks floating-point values only"
        return row
    expectation = implied_module.implied(initializer, shape, dtype, _einsum_axes(layer, name, shape))
    row.check, row.expected_mean, row.expected_std = expectation.check, expectation.mean, expectation.std
    if expectation.check == UNKNOWN:
        row.verdict, row.detail = NOT_CHECKED, expectation.why
        return row
    outcome = verify(values, expectation, k, dtype)
    row.verdict, row.detail, row.z_mean, row.z_std = outcome.verdict, outcome.detail, outcome.z_mean, outcome.z_std
    if expectation.fans is not None and fans is not None and tuple(expectation.fans) != tuple(fans):
        row.detail += (f"; {row.rule} reads fans {tuple(expectation.fans)}, not the {layout} layout's "
                       f"{tuple(fans)}")
    return row


def _fans(shape, layout: str) -> Optional[Tuple[int, int]]:
    try:
        return compute_fans(shape, layout)
    except ValueError:  # an equation that does not describe this shape
        return None


def _einsum_axes(layer, name: str, shape) -> Optional[Tuple[list, list]]:
    """The axes ``EinsumDense.build`` hands to a VarianceScaling: the kernel
    axes summed over, and those of the output."""
    if not isinstance(layer, keras.layers.EinsumDense) or name != "kernel":
        return None
    try:
        summed, added, shared = equation_axes(shape, layer.equation)
    except (ValueError, AttributeError, TypeError):
        return None
    return summed, sorted(added + shared)


# Checks ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The verdict of one check, what it found, and its z scores (random checks)."""

    verdict: str
    detail: str
    z_mean: Optional[float] = None
    z_std: Optional[float] = None


def _fails(detail: str, z_mean=None, z_std=None) -> Outcome:
    return Outcome(DIFFERS, detail, z_mean, z_std)


def _passes(detail: str, z_mean=None, z_std=None) -> Outcome:
    return Outcome(MATCHES, detail, z_mean, z_std)


def verify(values: np.ndarray, expectation: Implied, k: float, dtype: str = "float32") -> Outcome:
    """The `Outcome` of `values` (float64) against `expectation`."""
    bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if bad:
        return _fails(f"{bad} of {values.size} values are NaN or infinite")
    if values.size == 0:
        return _passes("no values")
    eps = _EPS.get(dtype, _EPS["float32"])
    if expectation.gain == 0:  # an orthogonal scheme with gain 0 gives zeros
        return _passes("all zero (gain 0)") if not values.any() else _fails("a gain-0 rule gives zeros only")
    check = {
        EXACT: _check_exact,
        ORTHOGONAL: _check_orthogonal,
        DELTA_ORTHOGONAL: _check_delta_orthogonal,
        CONVOLUTION_ORTHOGONAL: _check_convolution_orthogonal,
        SPARSE: _check_sparse,
        RANDOM: _check_random,
    }[expectation.check]
    return check(values, expectation, k, dtype, eps)


def _check_exact(values, expectation: Implied, k, dtype, eps):
    expected = np.broadcast_to(expectation.values, values.shape)
    off = np.abs(values - expected) > eps * np.abs(expected) + _TINY.get(dtype, 0.0)
    if off.any():
        index = np.unravel_index(np.argmax(np.abs(values - expected)), values.shape)
        return _fails(f"{int(off.sum())} of {values.size} values differ from the rule's exact values (at "
                      f"{tuple(int(i) for i in index)}: {values[index]:.6g} instead of {expected[index]:.6g})")
    return _passes("equal to the rule's exact values")


def _orthogonality_error(matrix: np.ndarray, gain: float) -> float:
    """max |MᵀM − g²I| / g² over the shorter side of `matrix` (complex allowed)."""
    gram = matrix.conj().T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.conj().T
    return float(np.abs(gram - gain**2 * np.eye(gram.shape[0])).max()) / gain**2


def _orthogonality_tolerance(eps: float, size: int) -> float:
    """Float tolerance of a Gram matrix of vectors of `size` entries: the
    rounding of the stored values, and of a float32 QR over `size` entries."""
    return 4.0 * eps + 16.0 * _EPS["float32"] * math.sqrt(size)


def _gram_outcome(matrices, gain: float, tolerance: float, claim: str, prefix: str = "") -> Outcome:
    """Whether every matrix of `matrices` is orthogonal times `gain` (`claim`
    names the product checked, e.g. ``WᵀW of the 64×32 kernel``)."""
    error = max(_orthogonality_error(matrix, gain) for matrix in matrices)
    if error > tolerance:
        return _fails(f"{prefix}{claim} is not {gain:.4g}²·I: off by {error:.3g}·g² (tolerance {tolerance:.2g})")
    return _passes(f"{prefix}{claim} = {gain:.4g}²·I within {error:.2g}·g²")


def _check_orthogonal(values, expectation: Implied, k, dtype, eps):
    matrix = values.reshape(-1, values.shape[-1])
    side = "WᵀW" if matrix.shape[0] >= matrix.shape[1] else "WWᵀ"
    return _gram_outcome([matrix], expectation.gain, _orthogonality_tolerance(eps, max(matrix.shape)),
                         f"{side} of the {matrix.shape[0]}×{matrix.shape[1]} kernel")


def _check_delta_orthogonal(values, expectation: Implied, k, dtype, eps):
    spatial = values.shape[:-2]
    centre = centre_taps(spatial)
    mask = np.ones(spatial, dtype=bool)
    mask[centre] = False
    stray = int(np.count_nonzero(values[mask]))
    if stray:
        return _fails(f"{stray} values outside the centre tap {centre} are not zero")
    return _gram_outcome([values[centre]], expectation.gain, _orthogonality_tolerance(eps, values.shape[-1]),
                         "HHᵀ of the centre tap", "zero off the centre tap; ")


def _check_convolution_orthogonal(values, expectation: Implied, k, dtype, eps):
    spatial = values.shape[:-2]
    # W(ω)W(ω)* − g²I is a trigonometric polynomial of degree < k per axis:
    # it vanishes everywhere iff it vanishes on a grid of 2k − 1 frequencies.
    grid = [2 * size - 1 for size in spatial]
    transfer = np.fft.fftn(values, s=grid, axes=tuple(range(len(spatial))))
    tolerance = _orthogonality_tolerance(eps, values.shape[-1] * math.prod(spatial))
    return _gram_outcome(transfer.reshape(-1, *values.shape[-2:]), expectation.gain, tolerance,
                         "W(ω)W(ω)* at every frequency")


def _check_sparse(values, expectation: Implied, k, dtype, eps):
    columns = values.reshape(-1, values.shape[-1])
    zeros = np.count_nonzero(columns == 0, axis=0)
    wrong = np.flatnonzero(zeros != expectation.zeros_per_unit)
    if wrong.size:
        return _fails(f"{wrong.size} of {columns.shape[1]} units do not have exactly "
                      f"{expectation.zeros_per_unit} zero weights (unit {int(wrong[0])} has {int(zeros[wrong[0]])})")
    kept = columns[columns != 0]
    stddev = expectation.std / math.sqrt(1.0 - expectation.zeros_per_unit / columns.shape[0])
    outcome = _check_random(kept, implied_module.normal(0.0, stddev), k, dtype, eps)
    outcome.detail = f"{expectation.zeros_per_unit} zeros per unit; the others: {outcome.detail}"
    return outcome


def _check_random(values, expectation: Implied, k, dtype, eps):
    values = values.ravel()
    n = values.size
    mu, sigma = expectation.mean, expectation.std
    z_mean = z_var = None
    if sigma > 0:
        mean = float(values.mean())
        z_mean = (mean - mu) / (sigma / math.sqrt(n))
        if n >= 2:
            z_var = variance_z(float(values.var(ddof=1)), sigma**2, n, expectation.kurtosis)
    if expectation.bounds is not None:
        low, high = expectation.bounds
        outside = int(np.count_nonzero((values < low - _slack(low, eps, dtype)) |
                                       (values > high + _slack(high, eps, dtype))))
        allowed = _allowed_strays(n, expectation.stray, k)
        if outside > allowed:
            return _fails(f"{outside} of {n} values lie outside the rule's bounds [{low:.6g}, {high:.6g}]"
                          + (f" (at most {allowed} expected)" if allowed else ""), z_mean, z_var)
    if sigma == 0:
        off = np.abs(values - mu) > eps * abs(mu) + _TINY.get(dtype, 0.0)
        if off.any():
            return _fails(f"{int(off.sum())} of {n} values differ from {mu:.6g} (the rule's std is 0)")
        return _passes(f"all equal to {mu:.6g}")
    if z_var is not None and abs(z_var) > k:
        return _fails(f"std {values.std(ddof=1):.4g} where the rule implies {sigma:.4g} "
                      f"(z = {z_var:.1f}, |z| ≤ {k:g} allowed)", z_mean, z_var)
    if abs(z_mean) > k:
        return _fails(f"mean {values.mean():.4g} where the rule implies {mu:.4g} ± {sigma / math.sqrt(n):.2g} "
                      f"(z = {z_mean:.1f}, |z| ≤ {k:g} allowed)", z_mean, z_var)
    if z_var is None:
        return _passes(f"within {k:g} standard errors of the mean (z = {z_mean:.2f}); one value has no spread",
                       z_mean)
    return _passes(f"mean and std within {k:g} standard errors (z = {z_mean:.2f}, {z_var:.2f})", z_mean, z_var)


def variance_z(sample_variance, variance: float, n: int, kurtosis: float):
    """How many standard errors the sample variance (ddof 1) of `n` values lies
    from `variance`, for a distribution of that kurtosis κ (elementwise for
    an array of sample variances).

    The sample variance has variance ``σ⁴·((κ − 3)/n + 2/(n − 1))``
    (``σ⁴·(κ − 1)/n`` for many values), that of ``σ²·χ²_ν/ν`` with
    ``2/ν = (κ − 3)/n + 2/(n − 1)`` (exactly this distribution for normal
    values, ν = n − 1). On the Wilson–Hilferty scale, ``(s²/σ²)^(1/3)`` is
    close to normal with mean ``1 − 2/(9ν)`` and variance ``2/(9ν)``, also
    in the tails and for few values. Below `variance`, ν is at most n − 1:
    few values of a bounded distribution (uniform, truncated normal) fall
    close together no more often than normal ones do, while a ν from their
    small kurtosis would say they almost never do.
    """
    ratio = np.asarray(sample_variance, dtype="float64") / variance
    nu = 2.0 / ((kurtosis - 3.0) / n + 2.0 / (n - 1))
    nu = np.where(ratio < 1.0, min(nu, n - 1.0), nu)
    spread = 2.0 / (9.0 * nu)
    z = (np.cbrt(ratio) - (1.0 - spread)) / np.sqrt(spread)
    return float(z) if z.ndim == 0 else z


def false_alarm_probability(k: float) -> float:
    """P(|Z| > k) for a standard normal Z: the chance that one check of values
    drawn from their rule fails."""
    return math.erfc(k / math.sqrt(2.0))


def _allowed_strays(n: int, probability: float, k: float) -> int:
    """The most values outside the bounds that `n` draws leave with a Poisson
    tail no larger than that of one check at `k`."""
    if probability <= 0:
        return 0
    rate, target = n * probability, false_alarm_probability(k)
    term = tail = math.exp(-rate)  # P(X = 0), then the running P(X ≤ m)
    m = 0
    while 1.0 - tail > target and m < n:
        m += 1
        term *= rate / m
        tail += term
    return m


def _slack(bound: float, eps: float, dtype: str) -> float:
    """How far a drawn value may pass a bound by rounding to the dtype."""
    return 2.0 * eps * abs(bound) + _TINY.get(dtype, 0.0)
