"""Every invalid constructor argument fails at construction, naming itself."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import kinit
from kinit.validation import check_bool, check_number

NAN, INF = math.nan, math.inf

# (class, keyword arguments, the argument the message must name)
BAD_ARGUMENTS = [
    (kinit.Constant, {"value": "one"}, "value"),
    (kinit.Constant, {"value": NAN}, "value"),
    (kinit.Constant, {"value": True}, "value"),
    (kinit.Constant, {"value": [1.0, NAN]}, "value"),
    (kinit.Constant, {"value": []}, "value"),
    (kinit.Constant, {"value": ["a", "b"]}, "value"),
    (kinit.Constant, {"value": [True, False]}, "value"),
    (kinit.Constant, {"value": [[1.0, 2.0], [3.0]]}, "value"),
    (kinit.RandomUniform, {"minval": 1.0, "maxval": 1.0}, "maxval"),
    (kinit.RandomUniform, {"minval": 2.0, "maxval": 1.0}, "maxval"),
    (kinit.RandomUniform, {"minval": -INF}, "minval"),
    (kinit.RandomUniform, {"maxval": "1"}, "maxval"),
    (kinit.RandomNormal, {"stddev": 0.0}, "stddev"),
    (kinit.RandomNormal, {"stddev": -1.0}, "stddev"),
    (kinit.RandomNormal, {"stddev": NAN}, "stddev"),
    (kinit.RandomNormal, {"mean": None}, "mean"),
    (kinit.RandomNormal, {"stddev": False}, "stddev"),
    (kinit.ScaledNormal, {"scale": 0}, "scale"),
    (kinit.ScaledNormal, {"scale": -10}, "scale"),
    (kinit.ScaledNormal, {"scale": INF}, "scale"),
    (kinit.TruncatedNormal, {"stddev": -0.1}, "stddev"),
    (kinit.TruncatedNormal, {"minval": -1.0}, "minval"),
    (kinit.TruncatedNormal, {"minval": 1.0, "maxval": 0.5}, "maxval"),
    (kinit.TruncatedNormal, {"stddev": 0.01, "minval": 5.0, "maxval": 6.0}, "minval"),
    (kinit.VarianceScaling, {"scale": 0.0}, "scale"),
    (kinit.VarianceScaling, {"scale": -2.0}, "scale"),
    (kinit.VarianceScaling, {"mode": "fan_sum"}, "mode"),
    (kinit.VarianceScaling, {"mode": None}, "mode"),
    (kinit.VarianceScaling, {"distribution": "cauchy"}, "distribution"),
    (kinit.VarianceScaling, {"kernel_layout": "nhwc"}, "kernel_layout"),
    (kinit.HeNormal, {"nonlinearity": "softplus"}, "nonlinearity"),
    (kinit.HeNormal, {"nonlinearity": 3}, "nonlinearity"),
    (kinit.HeNormal, {"gain": 0.0}, "gain"),
    (kinit.HeNormal, {"gain": -1.0}, "gain"),
    (kinit.HeNormal, {"gain": NAN}, "gain"),
    (kinit.HeNormal, {"gain": 2.0, "nonlinearity": "relu"}, "gain"),
    (kinit.HeNormal, {"nonlinearity": "tanh", "negative_slope": 0.2}, "negative_slope"),
    (kinit.HeNormal, {"negative_slope": "steep"}, "negative_slope"),
    (kinit.HeNormal, {"distribution": "uniform"}, "distribution"),
    (kinit.HeNormal, {"mode": "fan"}, "mode"),
    (kinit.HeUniform, {"distribution": "normal"}, "distribution"),
    (kinit.GlorotNormal, {"kernel_layout": "channels_first"}, "kernel_layout"),
    (kinit.VarianceScaling, {"input_axes": [0]}, "output_axes"),
    (kinit.HeNormal, {"input_axes": [0], "output_axes": "12"}, "output_axes"),
    (kinit.HeNormal, {"input_axes": [-1], "output_axes": [1]}, "input_axes"),
    (kinit.LecunUniform, {"input_axes": [0, 0], "output_axes": [1]}, "input_axes"),
    (kinit.GlorotUniform, {"input_axes": [0, 1], "output_axes": [1, 2]}, "output_axes"),
    (kinit.FanInNormal, {"input_axes": [0.5], "output_axes": [1]}, "input_axes"),
    (kinit.LecunNormal, {"seed": "42"}, "seed"),
    (kinit.FanInUniform, {"kernel_layout": 1}, "kernel_layout"),
    (kinit.FanInNormal, {"seed": 1.5}, "seed"),
    (kinit.RandomNormal, {"seed": -1}, "seed"),
    (kinit.RandomNormal, {"seed": 2**40}, "seed"),
    (kinit.RandomNormal, {"seed": True}, "seed"),
]


@pytest.mark.parametrize(
    "cls,kwargs,argument", BAD_ARGUMENTS, ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, a) in enumerate(BAD_ARGUMENTS)]
)
def test_bad_argument_is_named(cls, kwargs, argument):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    message = str(error.value)
    assert cls.__name__ in message
    assert f"`{argument}`" in message or f"{argument}=" in message


def test_message_states_value_and_rule():
    with pytest.raises(ValueError, match=r"RandomNormal: argument `stddev` must be a finite number > 0; received stddev=-1\.0"):
        kinit.RandomNormal(stddev=-1.0)


def test_numpy_scalars_are_accepted():
    init = kinit.RandomNormal(mean=np.float32(0.5), stddev=np.float64(2.0), seed=np.int64(3))
    assert init.get_config() == {"mean": 0.5, "stddev": 2.0, "seed": 3}


@pytest.mark.parametrize(
    "kwargs,value,allowed",
    [
        ({"minimum": 0.0, "maximum": 1.0, "strict": False}, 1.5, "a finite number in [0, 1]"),
        ({"minimum": 0.0, "maximum": 1.0}, 1.0, "a finite number in (0, 1)"),
        ({"maximum": 2.0, "strict": False}, 2.5, "a finite number <= 2"),
        ({"maximum": 2.0}, 2.0, "a finite number < 2"),
    ],
)
def test_check_number_maximum_states_the_interval(kwargs, value, allowed):
    with pytest.raises(ValueError, match=re.escape(f"must be {allowed}; received x={value!r}")):
        check_number("owner", "x", value, **kwargs)


def test_check_number_bounds_are_inclusive_unless_strict():
    assert check_number("owner", "x", 1.0, minimum=0.0, maximum=1.0, strict=False) == 1.0
    assert check_number("owner", "x", 0.5, minimum=0.0, maximum=1.0) == 0.5


@pytest.mark.parametrize("value", [1, 0, "yes", None, np.float32(1.0)])
def test_check_bool_refuses_truthy_stand_ins(value):
    with pytest.raises(ValueError, match=r"owner: argument `flag` must be True or False; received flag="):
        check_bool("owner", "flag", value)


def test_check_bool_returns_the_value():
    assert check_bool("owner", "flag", True) is True and check_bool("owner", "flag", False) is False


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])


BAD_INITIALIZE_ARGUMENTS = [
    ({"embedding_stddev": 0.0}, "embedding_stddev"),
    ({"embedding_stddev": -0.02}, "embedding_stddev"),
    ({"embedding_stddev": "small"}, "embedding_stddev"),
    ({"relu_bias": -0.01}, "relu_bias"),
    ({"relu_bias": NAN}, "relu_bias"),
    ({"zero_residual_gamma": 1}, "zero_residual_gamma"),
    ({"zero_residual_gamma": "yes"}, "zero_residual_gamma"),
    ({"policy": 5}, "policy"),
    ({"policy": ["he_normal"]}, "policy"),
    ({"policy": {"dense": 3}}, "policy"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("kwargs,argument", BAD_INITIALIZE_ARGUMENTS, ids=lambda v: repr(v)[:40])
def test_bad_initialize_argument_is_named(tiny_model, kwargs, argument):
    with pytest.raises(ValueError, match=f"^initialize: .*{argument}"):
        kinit.initialize(tiny_model, **kwargs)


BAD_LSUV_ARGUMENTS = [
    ({"target_std": 0.0}, "target_std"),
    ({"target_std": -1.0}, "target_std"),
    ({"tol": 0.0}, "tol"),
    ({"tol": NAN}, "tol"),
    ({"max_iter": -1}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"),
    ({"max_iter": True}, "max_iter"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 8.0}, "batch_size"),
    ({"orthogonal_first": 1}, "orthogonal_first"),
    ({"orthogonal_first": "no"}, "orthogonal_first"),
    ({"layers": 5}, "layers"),
    ({"layers": 2.5}, "layers"),
    ({"layers": [7]}, "layers"),
    ({"seed": "0"}, "seed"),
]


@pytest.mark.parametrize("kwargs,argument", BAD_LSUV_ARGUMENTS, ids=lambda v: repr(v)[:40])
def test_bad_lsuv_argument_is_named(tiny_model, kwargs, argument):
    x = np.zeros((8, 4), "float32")
    with pytest.raises(ValueError, match=f"^lsuv: .*`{argument}`"):
        kinit.lsuv(tiny_model, x, **kwargs)
