"""Fans of real Keras kernels, and the gain table."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import kinit
from kinit.gains import NONLINEARITIES, TABLE_GAINS


def built_kernel_shape(layer, input_shape):
    layer.build(input_shape)
    return tuple(layer.depthwise_kernel.shape if hasattr(layer, "depthwise_kernel") else layer.kernel.shape)


# (layer, input shape, layout, expected fan_in, expected fan_out), the fans
# written from the layer's own parameters: channels in, filters, kernel size.
LAYERS = [
    (keras.layers.Dense(5), (None, 7), "standard", 7, 5),
    (keras.layers.Conv1D(4, 3), (None, 10, 6), "standard", 6 * 3, 4 * 3),
    (keras.layers.Conv2D(8, (3, 5)), (None, 12, 12, 2), "standard", 2 * 15, 8 * 15),
    (keras.layers.Conv3D(4, 2), (None, 6, 6, 6, 3), "standard", 3 * 8, 4 * 8),
    (keras.layers.Conv2DTranspose(4, 3), (None, 8, 8, 6), "transposed", 6 * 9, 4 * 9),
    (keras.layers.Conv1DTranspose(5, 2), (None, 8, 3), "transposed", 3 * 2, 5 * 2),
    (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 8, 8, 5), "depthwise", 9, 2 * 9),
]


@pytest.mark.parametrize("layer,input_shape,layout,fan_in,fan_out", LAYERS, ids=lambda v: getattr(v, "name", None))
def test_fans_of_real_layer_kernels(layer, input_shape, layout, fan_in, fan_out):
    shape = built_kernel_shape(layer, input_shape)
    assert kinit.compute_fans(shape, layout) == (fan_in, fan_out)


def test_keras_builtin_reads_transposed_and_depthwise_kernels_differently():
    # Pins why kernel_layout exists: the standard reading is wrong for these.
    transposed = built_kernel_shape(keras.layers.Conv2DTranspose(4, 3), (None, 8, 8, 6))
    assert kinit.compute_fans(transposed, "standard") == (4 * 9, 6 * 9)
    depthwise = built_kernel_shape(keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 8, 8, 5))
    assert kinit.compute_fans(depthwise, "standard") == (5 * 9, 2 * 9)


def test_layer_built_with_layout_gets_the_he_variance():
    # 64 input channels -> 64 output channels of a 5x5 transposed conv:
    # fan_in = 64 * 25 = 1600 and Var(W) = 2 / 1600.
    layer = keras.layers.Conv2DTranspose(
        64, 5, kernel_initializer=kinit.HeNormal(distribution="normal", kernel_layout="transposed", seed=0)
    )
    layer.build((None, 8, 8, 64))
    kernel = keras.ops.convert_to_numpy(layer.kernel).ravel()
    expected = 2 / 1600
    assert abs(kernel.var() - expected) < 5 * expected * math.sqrt(2 / kernel.size)


@pytest.mark.parametrize(
    "layer,input_shape,fan_in,fan_out",
    [
        # One input feature axis b to two output axes c, d.
        (keras.layers.EinsumDense("ab,bcd->acd", (4, 8)), (None, 16), 16, 4 * 8),
        # A Dense over the last axis of a sequence (the equation MultiHeadAttention's projections use).
        (keras.layers.EinsumDense("abc,cde->abde", (None, 2, 8)), (None, 5, 12), 12, 2 * 8),
        # Two contracted axes (MultiHeadAttention's output projection).
        (keras.layers.EinsumDense("abcd,cde->abe", (None, 12)), (None, 5, 2, 8), 2 * 8, 12),
        # b is in the input and the output: one kernel slice per b, counted in neither fan.
        (keras.layers.EinsumDense("abc,bcd->abd", (5, 7)), (None, 5, 6), 6, 7),
        (keras.layers.EinsumDense("...b,bc->...c", 3), (None, 4, 6), 6, 3),
    ],
    ids=["ab,bcd->acd", "abc,cde->abde", "abcd,cde->abe", "abc,bcd->abd", "...b,bc->...c"],
)
def test_fans_of_einsum_dense_kernels_come_from_the_equation(layer, input_shape, fan_in, fan_out):
    shape = built_kernel_shape(layer, input_shape)
    assert kinit.compute_fans(shape, layer.equation) == (fan_in, fan_out)


def test_an_initializer_with_an_equation_layout_gets_the_he_variance():
    # Kernel (64, 4, 8): fan_in 64; the standard reading would give 64·4 = 256.
    init = kinit.HeNormal(distribution="normal", kernel_layout="ab,bcd->acd", seed=0)
    layer = keras.layers.EinsumDense("ab,bcd->acd", (4, 8), kernel_initializer=init)
    layer.build((None, 64))
    kernel = keras.ops.convert_to_numpy(layer.kernel).ravel()
    expected = 2 / 64
    assert abs(kernel.var() - expected) < 5 * expected * math.sqrt(2 / kernel.size)


def test_handed_over_axes_decide_the_fans():
    # Keras's test_compute_fans_with_axes: the query and output projections.
    assert kinit.compute_fans((512, 8, 64), input_axes=[0], output_axes=[1, 2]) == (512, 512)
    assert kinit.compute_fans((512, 8, 64), input_axes=[0, 1], output_axes=[2]) == (512 * 8, 64)


def test_handed_over_axes_take_precedence_over_the_layout():
    # MultiHeadAttention's output kernel (heads, key_dim, width) = (8, 16, 32).
    assert kinit.compute_fans((8, 16, 32), "standard", [0, 1], [2]) == (128, 32)
    assert kinit.compute_fans((8, 16, 32), "transposed", [0, 1], [2]) == (128, 32)
    # The query projection's equation, given for every projection, gives way too.
    assert kinit.compute_fans((8, 16, 32), "abc,cde->abde", [0, 1], [2]) == (128, 32)


def test_an_equation_naming_the_handed_axes_also_knows_the_shared_ones():
    # "abc,bcd->abd": Keras hands b over as an output axis; the equation knows
    # that b is in the input too (one kernel slice per b), so fan_out is d alone.
    assert kinit.compute_fans((5, 6, 7), input_axes=[1], output_axes=[0, 2]) == (6, 35)
    assert kinit.compute_fans((5, 6, 7), "abc,bcd->abd", [1], [0, 2]) == (6, 7)
    init = kinit.HeNormal(mode="fan_out", distribution="normal", kernel_layout="abc,bcd->abd", seed=0)
    layer = keras.layers.EinsumDense("abc,bcd->abd", (5, 7), kernel_initializer=init)
    layer.build((None, 5, 60))
    kernel = keras.ops.convert_to_numpy(layer.kernel).ravel()
    expected = 2 / 7
    assert abs(kernel.var() - expected) < 5 * expected * math.sqrt(2 / kernel.size)


def test_axes_beyond_the_kernel_are_named():
    with pytest.raises(ValueError, match=r"output_axes=\[2\].*shape \(3, 4\)"):
        kinit.compute_fans((3, 4), input_axes=[0], output_axes=[2])
    with pytest.raises(ValueError, match=r"given together"):
        kinit.compute_fans((3, 4), input_axes=[0])


def test_an_equation_that_does_not_fit_the_kernel_is_named():
    with pytest.raises(ValueError, match=r"'ab,bc->ac'.*2 axes.*\(3, 4, 5\)"):
        kinit.compute_fans((3, 4, 5), "ab,bc->ac")
    with pytest.raises(ValueError, match="kernel_layout.*EinsumDense equation"):
        kinit.HeNormal(kernel_layout="ab,bc")


def test_small_ranks_follow_keras():
    assert kinit.compute_fans(()) == (1, 1)
    assert kinit.compute_fans((7,)) == (7, 7)


def test_unknown_layout_is_named():
    with pytest.raises(ValueError, match="kernel_layout.*'sideways'"):
        kinit.compute_fans((3, 3), "sideways")


def torch_calculate_gain():
    # Imported here, not at module level: without torch only these cross-checks skip.
    return pytest.importorskip("torch.nn.init", reason="torch cross-check needs torch").calculate_gain


@pytest.mark.parametrize("name", sorted(set(TABLE_GAINS) - {"identity"}))
def test_table_gains_agree_with_torch(name):
    assert kinit.calculate_gain(name) == pytest.approx(torch_calculate_gain()(name), rel=1e-12)


@pytest.mark.parametrize("slope", [None, 0.0, 0.2, 1.0])
def test_leaky_relu_gain_agrees_with_torch(slope):
    expected = torch_calculate_gain()("leaky_relu", 0.01 if slope is None else slope)
    assert kinit.calculate_gain("leaky_relu", slope) == pytest.approx(expected, rel=1e-12)


ACTIVATIONS = {
    "gelu": lambda z: keras.ops.convert_to_numpy(keras.activations.gelu(z, approximate=False)),
    "silu": lambda z: keras.ops.convert_to_numpy(keras.activations.silu(z)),
    "swish": lambda z: keras.ops.convert_to_numpy(keras.activations.silu(z)),
    "elu": lambda z: keras.ops.convert_to_numpy(keras.activations.elu(z)),
    "relu": lambda z: np.maximum(z, 0.0),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_second_moment_rule_against_monte_carlo(name):
    # Gain g satisfies g² E[φ(z)²] = 1; check E[φ(z)²] by sampling through
    # Keras's own activation, within 5 standard errors.
    z = np.random.default_rng(0).standard_normal(400_000).astype("float32")
    squares = ACTIVATIONS[name](z).astype(np.float64) ** 2
    expected = 1.0 / kinit.calculate_gain(name) ** 2
    assert abs(squares.mean() - expected) < 5 * squares.std() / math.sqrt(z.size)


def test_elu_alpha_changes_the_gain():
    assert kinit.calculate_gain("elu", 2.0) < kinit.calculate_gain("elu") < kinit.calculate_gain("relu")


@pytest.mark.parametrize(
    "args,match",
    [
        (("softplus",), "nonlinearity"),
        ((None,), "nonlinearity"),
        (("relu", 0.1), "param"),
        (("leaky_relu", "x"), "param"),
        (("leaky_relu", float("nan")), "param"),
        (("elu", -1.0), "param"),
    ],
)
def test_bad_gain_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        kinit.calculate_gain(*args)


def test_every_listed_nonlinearity_has_a_positive_gain():
    assert all(kinit.calculate_gain(name) > 0 for name in NONLINEARITIES)
