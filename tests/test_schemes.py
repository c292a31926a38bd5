"""The core schemes against their formulas, on whatever Keras backend is active.

This module uses only keras.ops / numpy, so tests/test_backends.py reruns it
under KERAS_BACKEND=jax and KERAS_BACKEND=torch.
"""

from __future__ import annotations

import json
import math
import re

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kinit
from conftest import standard_errors

SHAPE = (500, 300)  # 150,000 draws: variance known to about 1 %
FAN_IN, FAN_OUT = SHAPE
FAN_AVG = (FAN_IN + FAN_OUT) / 2
UNIFORM_KURTOSIS = 1.8
NORMAL_KURTOSIS = 3.0


def as_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def truncated_moments(alpha: float, beta: float):
    """Mean, variance and kurtosis of a standard normal truncated to [alpha, beta]."""
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    mass = cdf(beta) - cdf(alpha)
    # Raw moments by the recurrence m_k = (k-1) m_{k-2} - [z^{k-1} phi(z)]_alpha^beta / mass.
    raw = [1.0, (phi(alpha) - phi(beta)) / mass]
    for k in range(2, 5):
        edge = (alpha ** (k - 1) * phi(alpha) - beta ** (k - 1) * phi(beta)) / mass
        raw.append((k - 1) * raw[k - 2] + edge)
    mean = raw[1]
    var = raw[2] - mean**2
    m4 = raw[4] - 4 * mean * raw[3] + 6 * mean**2 * raw[2] - 3 * mean**4
    return mean, var, m4 / var**2


TRUNC_MEAN, TRUNC_VAR, TRUNC_KURTOSIS = truncated_moments(-2.0, 2.0)


def test_truncated_2sigma_constant_is_the_standard_deviation():
    from kinit.random import TRUNCATED_2SIGMA_STD

    assert TRUNCATED_2SIGMA_STD == pytest.approx(math.sqrt(TRUNC_VAR), rel=1e-12)

# (initializer, expected mean, expected variance, kurtosis, (low, high) bounds or None)
CASES = {
    "RandomUniform": (kinit.RandomUniform(-0.3, 0.5, seed=1), 0.1, 0.8**2 / 12, UNIFORM_KURTOSIS, (-0.3, 0.5)),
    "RandomNormal": (kinit.RandomNormal(0.2, 0.7, seed=2), 0.2, 0.49, NORMAL_KURTOSIS, None),
    "ScaledNormal x10": (kinit.ScaledNormal(10.0, seed=3), 0.0, 100.0, NORMAL_KURTOSIS, None),
    "ScaledNormal x0.01": (kinit.ScaledNormal(0.01, seed=4), 0.0, 1e-4, NORMAL_KURTOSIS, None),
    "TruncatedNormal": (
        kinit.TruncatedNormal(0.5, 2.0, seed=5), 0.5, 4.0 * TRUNC_VAR, TRUNC_KURTOSIS, (0.5 - 4.0, 0.5 + 4.0)
    ),
    "FanInUniform": (
        kinit.FanInUniform(seed=6), 0.0, 1 / (3 * FAN_IN), UNIFORM_KURTOSIS,
        (-1 / math.sqrt(FAN_IN), 1 / math.sqrt(FAN_IN)),
    ),
    "FanInNormal": (kinit.FanInNormal(seed=7), 0.0, 1 / FAN_IN, NORMAL_KURTOSIS, None),
    "LecunNormal": (
        kinit.LecunNormal(seed=8), 0.0, 1 / FAN_IN, TRUNC_KURTOSIS,
        (-2 * math.sqrt(1 / FAN_IN / TRUNC_VAR), 2 * math.sqrt(1 / FAN_IN / TRUNC_VAR)),
    ),
    "LecunUniform": (
        kinit.LecunUniform(seed=9), 0.0, 1 / FAN_IN, UNIFORM_KURTOSIS,
        (-math.sqrt(3 / FAN_IN), math.sqrt(3 / FAN_IN)),
    ),
    "GlorotNormal": (kinit.GlorotNormal(seed=10), 0.0, 1 / FAN_AVG, TRUNC_KURTOSIS, None),
    "GlorotNormal tanh normal": (
        kinit.GlorotNormal(nonlinearity="tanh", distribution="normal", seed=11),
        0.0, (5 / 3) ** 2 / FAN_AVG, NORMAL_KURTOSIS, None,
    ),
    "GlorotUniform": (
        kinit.GlorotUniform(seed=12), 0.0, 1 / FAN_AVG, UNIFORM_KURTOSIS,
        (-math.sqrt(6 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ),
    "HeNormal": (kinit.HeNormal(seed=13), 0.0, 2 / FAN_IN, TRUNC_KURTOSIS, None),
    "HeNormal leaky fan_out": (
        kinit.HeNormal(negative_slope=0.2, mode="fan_out", distribution="normal", seed=14),
        0.0, 2 / (1 + 0.04) / FAN_OUT, NORMAL_KURTOSIS, None,
    ),
    "HeUniform": (
        kinit.HeUniform(seed=15), 0.0, 2 / FAN_IN, UNIFORM_KURTOSIS,
        (-math.sqrt(6 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ),
    "HeUniform gain": (kinit.HeUniform(gain=3.0, seed=16), 0.0, 9 / FAN_IN, UNIFORM_KURTOSIS, None),
    "VarianceScaling fan_avg normal": (
        kinit.VarianceScaling(0.5, "fan_avg", "untruncated_normal", seed=17),
        0.0, 0.5 / FAN_AVG, NORMAL_KURTOSIS, None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_moments_match_formula(name):
    initializer, mean, variance, kurtosis, bounds = CASES[name]
    values = as_numpy(initializer(SHAPE, dtype="float32")).ravel()
    mean_tol, var_tol = standard_errors(values.size, k=5.0)
    assert abs(values.mean() - mean) < mean_tol(variance) + 1e-7 * abs(mean)
    assert abs(values.var() - variance) < var_tol(variance, kurtosis)
    if bounds is not None:
        low, high = bounds
        # float32 rounding of the bound itself is the only slack allowed.
        eps = 1e-6 * max(abs(low), abs(high))
        assert values.min() >= low - eps and values.max() <= high + eps


@pytest.mark.parametrize("low,high", [(-1.0, 3.0), (-0.25, 0.5), (0.5, 4.0)])
def test_truncated_normal_absolute_bounds(low, high):
    mean, stddev = 0.0, 1.0
    values = as_numpy(kinit.TruncatedNormal(mean, stddev, low, high, seed=3)(SHAPE)).ravel()
    expected_mean, expected_var, kurtosis = truncated_moments(low, high)
    mean_tol, var_tol = standard_errors(values.size, k=5.0)
    assert values.min() >= low and values.max() <= high
    assert abs(values.mean() - expected_mean) < mean_tol(expected_var)
    assert abs(values.var() - expected_var) < var_tol(expected_var, kurtosis)


def tail_moments(alpha: float, beta: float):
    """`truncated_moments` for an interval in the upper tail, from log-scaled
    densities: the recurrence's differences of tiny numbers lose every digit
    far out (at [6, 7] the mass is 1e-9)."""
    # Scale φ and the mass by exp(alpha²/2) so that they stay of order 1.
    phi = lambda z: math.exp((alpha * alpha - z * z) / 2) / math.sqrt(2 * math.pi)
    mass = (math.erfc(alpha / math.sqrt(2)) - math.erfc(beta / math.sqrt(2))) / 2 * math.exp(alpha * alpha / 2)
    raw = [1.0, (phi(alpha) - phi(beta)) / mass]
    for k in range(2, 5):
        raw.append((k - 1) * raw[k - 2] + (alpha ** (k - 1) * phi(alpha) - beta ** (k - 1) * phi(beta)) / mass)
    mean = raw[1]
    var = raw[2] - mean**2
    m4 = raw[4] - 4 * mean * raw[3] + 6 * mean**2 * raw[2] - 3 * mean**4
    return mean, var, m4 / var**2


@pytest.mark.parametrize("low,high", [(4.0, 5.0), (6.0, 7.0), (-10.5, -9.5)])
def test_truncated_normal_far_tail_intervals_keep_their_moments(low, high):
    # Inverse-CDF sampling near Φ = 1 in float32 collapsed these onto a few values.
    mean, stddev = 1.0, 2.0
    values = as_numpy(
        kinit.TruncatedNormal(mean, stddev, mean + stddev * low, mean + stddev * high, seed=4)(SHAPE)
    ).ravel()
    z = (values - mean) / stddev
    flip = -1.0 if high <= 0 else 1.0
    expected_mean, expected_var, kurtosis = tail_moments(*sorted((flip * low, flip * high)))
    mean_tol, var_tol = standard_errors(z.size, k=5.0)
    assert z.min() >= low - 1e-5 and z.max() <= high + 1e-5
    assert abs(flip * z.mean() - expected_mean) < mean_tol(expected_var) + 1e-6 * abs(expected_mean)
    assert abs(z.var() - expected_var) < var_tol(expected_var, kurtosis)
    assert len(np.unique(values)) > 0.1 * values.size  # float32 rounding merges some, not most


def test_truncated_normal_beyond_the_resolvable_tail_is_refused():
    with pytest.raises(ValueError, match=r"`minval` and `maxval`.*minval=13.*maxval=14"):
        kinit.TruncatedNormal(0.0, 1.0, 13.0, 14.0)


def test_uniform_bounds_are_attained_closely():
    # Not just inside the bounds: the draw fills them (catches a halved limit).
    values = as_numpy(kinit.HeUniform(seed=0)(SHAPE)).ravel()
    limit = math.sqrt(6 / FAN_IN)
    assert values.max() > 0.999 * limit and values.min() < -0.999 * limit


@pytest.mark.parametrize(
    "initializer,value",
    [(kinit.Zeros(), 0.0), (kinit.Ones(), 1.0), (kinit.Constant(-2.5), -2.5)],
)
def test_constants(initializer, value):
    values = as_numpy(initializer((7, 3)))
    np.testing.assert_array_equal(values, np.full((7, 3), value))


def test_constant_fills_integer_dtypes():
    values = keras.ops.convert_to_numpy(kinit.Constant(3)((4,), dtype="int32"))
    assert values.dtype == np.int32 and values.tolist() == [3, 3, 3, 3]


@pytest.mark.parametrize(
    "value,shape",
    [
        ([1.0, -2.0, 0.5], (4, 3)),           # one value per unit, every row alike
        ([[1.0], [2.0]], (2, 5)),             # one value per input, every column alike
        (np.arange(6.0).reshape(2, 3), (2, 3)),
        (np.float32([0.25]), (3, 3, 2)),
        ([[1, 2]], (3, 2, 2)),
    ],
)
def test_constant_array_is_broadcast_to_the_shape(value, shape):
    values = keras.ops.convert_to_numpy(kinit.Constant(value)(shape))
    np.testing.assert_array_equal(values, np.broadcast_to(np.asarray(value, dtype="float32"), shape))


@pytest.mark.parametrize("dtype", ["bfloat16", "float64", "int32", "bool"])
def test_constant_array_fills_every_dtype(dtype):
    values = kinit.Constant([[0.0], [2.0]])((2, 3), dtype=dtype)
    assert keras.backend.standardize_dtype(values.dtype) == dtype
    expected = keras.ops.cast(np.array([[0.0] * 3, [2.0] * 3]), dtype)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(values), keras.ops.convert_to_numpy(expected))


def test_constant_array_config_is_a_plain_nested_list():
    initializer = kinit.Constant(np.array([[0.5, -1.0]], dtype="float32"))
    config = initializer.get_config()
    assert config == {"value": [[0.5, -1.0]]}
    rebuilt = kinit.Constant.from_config(json.loads(json.dumps(config)))
    np.testing.assert_array_equal(as_numpy(rebuilt((3, 2))), as_numpy(initializer((3, 2))))


@pytest.mark.parametrize(
    "value,shape",
    [([1.0, 2.0], (3, 4)), ([[1.0, 2.0]], (2,)), ([1.0, 2.0, 3.0], (3, 1))],
)
def test_constant_array_that_cannot_broadcast_is_named(value, shape):
    value_shape = re.escape(str(np.asarray(value).shape))
    with pytest.raises(ValueError, match=rf"Constant: cannot fill .*{re.escape(str(shape))}.*{value_shape}.*broadcast"):
        kinit.Constant(value)(shape)


ALL_FLOAT_SCHEMES = [case[0] for case in CASES.values()] + [kinit.Zeros(), kinit.Ones(), kinit.Constant(0.5)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("initializer", ALL_FLOAT_SCHEMES, ids=lambda i: type(i).__name__)
def test_requested_dtype_is_returned(initializer, dtype):
    values = initializer((16, 8), dtype=dtype)
    assert keras.backend.standardize_dtype(values.dtype) == dtype
    assert tuple(values.shape) == (16, 8)


@pytest.mark.parametrize("dtype,mantissa_bits", [("float16", 11), ("bfloat16", 8)])
def test_low_precision_uniform_values_are_rounded_float32_draws(dtype, mantissa_bits):
    # Documented: the closed interval between the bounds rounded to the
    # dtype. Draws within half an ulp (2^-mantissa_bits / 2) below 1 round to 1.
    n = 200_000
    values = as_numpy(kinit.RandomUniform(0.0, 1.0, seed=0)((n,), dtype=dtype))
    assert values.min() >= 0.0 and values.max() <= 1.0
    p = 2.0 ** -(mantissa_bits + 1)
    assert abs((values == 1.0).sum() - n * p) < 5 * math.sqrt(n * p * (1 - p))
    # The uniform schemes' ±limit is rounded too, and may lie just beyond the exact one.
    limit = math.sqrt(6 / 300)
    rounded = float(as_numpy(keras.ops.cast(keras.ops.convert_to_tensor([limit]), dtype))[0])
    he = as_numpy(kinit.HeUniform(seed=1)((300, 200), dtype=dtype))
    assert np.abs(he).max() <= rounded


def test_default_dtype_is_floatx():
    assert keras.backend.standardize_dtype(kinit.HeNormal()((3, 3)).dtype) == keras.config.floatx()


def test_random_scheme_refuses_integer_dtype():
    with pytest.raises(ValueError, match="int32"):
        kinit.HeNormal()((3, 3), dtype="int32")


@pytest.mark.parametrize("shape", [(3, -1), (2.5, 3), "ab", None, (True, 2)])
def test_bad_shape_is_named(shape):
    with pytest.raises(ValueError, match="shape"):
        kinit.GlorotUniform()(shape)


def test_successive_calls_differ_and_restart_from_a_stored_config():
    initializer = kinit.HeNormal(seed=42)
    first, second = as_numpy(initializer((64, 64))), as_numpy(initializer((64, 64)))
    assert not np.array_equal(first, second)
    rebuilt = kinit.HeNormal.from_config(json.loads(json.dumps(initializer.get_config())))
    np.testing.assert_array_equal(as_numpy(rebuilt((64, 64))), first)
    np.testing.assert_array_equal(as_numpy(rebuilt((64, 64))), second)


def test_unseeded_calls_differ():
    initializer = kinit.GlorotUniform()
    assert not np.array_equal(as_numpy(initializer((32, 32))), as_numpy(initializer((32, 32))))


def test_unseeded_follows_global_seed():
    keras.utils.set_random_seed(7)
    first = as_numpy(kinit.HeNormal()((32, 32)))
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(as_numpy(kinit.HeNormal()((32, 32))), first)


def test_neighbouring_seeds_are_unrelated():
    a = as_numpy(kinit.RandomNormal(stddev=1.0, seed=1)((200, 200))).ravel()
    b = as_numpy(kinit.RandomNormal(stddev=1.0, seed=2)((200, 200))).ravel()
    # Independent unit normals: correlation ~ N(0, 1/n); 5 standard errors.
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)


@pytest.mark.parametrize(
    "cls",
    [kinit.VarianceScaling, kinit.HeNormal, kinit.LecunUniform, kinit.FanInNormal],
)
def test_kernel_layout_changes_the_fan(cls):
    shape = (3, 3, 64, 4)  # standard: fan_in 576; transposed: 36; depthwise: 9
    variances = {}
    for layout in kinit.KERNEL_LAYOUTS:
        variances[layout] = as_numpy(cls(kernel_layout=layout, seed=0)(shape)).var()
    fans = {layout: kinit.compute_fans(shape, layout)[0] for layout in kinit.KERNEL_LAYOUTS}
    for layout in kinit.KERNEL_LAYOUTS:
        ratio = variances[layout] * fans[layout] / (variances["standard"] * fans["standard"])
        # Same seed and shape: every layout scales the same underlying draw,
        # so the ratio is exact up to float32 rounding, not a statistical estimate.
        assert abs(ratio - 1) < 1e-5, (layout, ratio)


scheme_strategy = st.one_of(
    st.builds(kinit.RandomUniform, st.floats(-5, 0), st.floats(0.01, 5), st.integers(0, 2**31 - 1)),
    st.builds(kinit.RandomNormal, st.floats(-5, 5), st.floats(1e-4, 10), st.integers(0, 1000)),
    st.builds(kinit.ScaledNormal, st.floats(1e-4, 100)),
    st.builds(kinit.TruncatedNormal, st.floats(-1, 1), st.floats(1e-3, 3)),
    st.builds(
        kinit.VarianceScaling,
        st.floats(1e-3, 10),
        st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
        st.sampled_from(["truncated_normal", "normal", "untruncated_normal", "uniform"]),
        st.sampled_from(kinit.KERNEL_LAYOUTS),
    ),
    st.builds(
        kinit.HeNormal,
        nonlinearity=st.sampled_from(["relu", "tanh", "selu", "gelu", "silu", "elu", "sigmoid"]),
        mode=st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
        distribution=st.sampled_from(["truncated_normal", "normal"]),
    ),
    st.builds(kinit.GlorotUniform, gain=st.floats(0.01, 10)),
    st.builds(kinit.LecunUniform, negative_slope=st.floats(-1, 1)),
    st.builds(kinit.FanInUniform, kernel_layout=st.sampled_from(kinit.KERNEL_LAYOUTS)),
)
shape_strategy = st.lists(st.integers(0, 9), min_size=0, max_size=5).map(tuple)


@settings(max_examples=60, deadline=None)
@given(initializer=scheme_strategy, shape=shape_strategy)
def test_any_valid_config_and_shape_gives_finite_values(initializer, shape):
    values = as_numpy(initializer(shape))
    assert values.shape == shape
    assert np.isfinite(values).all()
    config = initializer.get_config()
    assert type(initializer).from_config(config).get_config() == config
