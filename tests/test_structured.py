"""The structured schemes: orthogonal, identity-like, sparse and ZerO.

The tests use only keras.ops, Keras layers and numpy; tests/test_backends.py
reruns this module under KERAS_BACKEND=jax and KERAS_BACKEND=torch.
"""

from __future__ import annotations

import json
import math
import re

import keras
import numpy as np
import pytest

import kinit
from catalog import SCHEMES
from conftest import ROOT, run_python, standard_errors

CONV_LAYERS = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}


def as_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def run_layer(layer, x: np.ndarray) -> np.ndarray:
    return as_numpy(layer(x.astype("float32")))


def norms(x: np.ndarray) -> np.ndarray:
    """The Euclidean norm of each sample of a batch."""
    return np.linalg.norm(x.reshape(len(x), -1), axis=1)


def float64_available() -> bool:
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


# ----------------------------------------------------------------- Orthogonal


@pytest.mark.parametrize(
    "shape",
    [(8, 8), (36, 8), (8, 36), (3, 3, 4, 8), (2, 2, 2, 36)],
    ids=["square", "tall", "wide", "conv-tall", "conv-wide"],
)
def test_orthogonal_gram_is_gain_squared_identity(shape):
    gain = 1.7
    w = as_numpy(kinit.Orthogonal(gain, seed=3)(shape)).reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(len(gram)), atol=1e-5)


def test_orthogonal_float64_is_orthogonal_to_float64_precision():
    if not float64_available():
        pytest.skip("float64 on JAX needs JAX_ENABLE_X64=1")
    w = as_numpy(kinit.Orthogonal(seed=0)((36, 8), dtype="float64"))
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-13)


def test_orthogonal_seeds_and_calls_give_different_matrices():
    first = kinit.Orthogonal(seed=1)
    a, b = as_numpy(first((8, 8))), as_numpy(first((8, 8)))
    c = as_numpy(kinit.Orthogonal(seed=2)((8, 8)))
    assert not np.allclose(a, b) and not np.allclose(a, c)
    np.testing.assert_array_equal(as_numpy(kinit.Orthogonal(seed=1)((8, 8))), a)


def test_orthogonal_diagonal_signs_are_fair_coins():
    # For Haar Q and any fixed diagonal D of ±1, QD has the law of Q, so the
    # signs of diag(Q) are independent fair coins: the positive count below
    # is Binomial(n, 1/2). Plain Householder QR, without the sign
    # correction, makes only about 20 % of them positive.
    initializer = kinit.Orthogonal(seed=0)
    diagonals = np.concatenate([np.diag(as_numpy(initializer((8, 8)))) for _ in range(300)])
    n = diagonals.size
    assert abs((diagonals > 0).sum() - n / 2) < 5 * math.sqrt(n / 4)


# ------------------------------------------------------------ DeltaOrthogonal


@pytest.mark.parametrize("shape", [(5, 4, 8), (3, 3, 4, 8), (3, 1, 3, 4, 8)])
def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere(shape):
    gain = 1.3
    kernel = as_numpy(kinit.DeltaOrthogonal(gain, seed=4)(shape))
    centre = tuple(k // 2 for k in shape[:-2])
    h = kernel[centre]
    np.testing.assert_allclose(h @ h.T, gain**2 * np.eye(shape[-2]), atol=1e-5)
    others = kernel.copy()
    others[centre] = 0.0
    assert not others.any()


def test_delta_orthogonal_conv2d_same_padding_scales_norms_by_gain():
    # Only the centre tap is non-zero, so padding never enters the sum: the
    # norm is exact for any image size.
    gain = 1.5
    layer = keras.layers.Conv2D(
        8, 3, padding="same", use_bias=False, kernel_initializer=kinit.DeltaOrthogonal(gain, seed=5)
    )
    x = np.random.default_rng(0).normal(size=(4, 5, 7, 4))
    np.testing.assert_allclose(norms(run_layer(layer, x)), gain * norms(x), rtol=1e-5)


def test_delta_orthogonal_valid_padding_keeps_each_positions_norm_but_drops_the_border():
    # The guarantee is per output position: ‖y[p]‖ = gain·‖x[p + centre]‖.
    # `valid` padding has no output for the border positions, so the whole
    # tensor's norm is gain times the norm of the interior only.
    gain = 1.5
    layer = keras.layers.Conv2D(
        8, 3, padding="valid", use_bias=False, kernel_initializer=kinit.DeltaOrthogonal(gain, seed=6)
    )
    x = np.random.default_rng(1).normal(size=(2, 5, 7, 4))
    y = run_layer(layer, x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), gain * np.linalg.norm(x[:, 1:-1, 1:-1], axis=-1), rtol=1e-5)
    assert np.all(norms(y) < 0.9 * gain * norms(x))


# ------------------------------------------------------ ConvolutionOrthogonal


@pytest.mark.parametrize(
    "kernel_size,channels",
    [((3,), (4, 8)), ((3, 3), (8, 8)), ((2, 4), (4, 8)), ((3, 3, 3), (4, 8))],
    ids=["1d", "2d", "2d-non-square", "3d"],
)
def test_convolution_orthogonal_is_an_isometry_with_circular_padding(kernel_size, channels):
    gain = 1.25
    rank = len(kernel_size)
    c_in, c_out = channels
    initializer = kinit.ConvolutionOrthogonal(gain, seed=6)
    layer = CONV_LAYERS[rank](c_out, kernel_size, padding="valid", use_bias=False, kernel_initializer=initializer)
    x = np.random.default_rng(1).normal(size=(3,) + (6,) * rank + (c_in,))
    wrap = [(0, 0)] + [((k - 1) // 2, k // 2) for k in kernel_size] + [(0, 0)]
    y = run_layer(layer, np.pad(x, wrap, mode="wrap"))
    assert y.shape[1:-1] == x.shape[1:-1]
    np.testing.assert_allclose(norms(y), gain * norms(x), rtol=1e-5)
    # Not a delta kernel in disguise: the off-centre taps carry weight.
    kernel = as_numpy(layer.kernel)
    assert np.abs(kernel).sum() > 1.5 * np.abs(kernel[tuple((k - 1) // 2 for k in kernel_size)]).sum()


# ----------------------------------------------------------- ConvolutionAware


def spectra(kernel: np.ndarray, unit: int) -> np.ndarray:
    """``rfftn`` over the spatial axes of output unit's kernels, one row per input."""
    spatial_axes = tuple(range(1, kernel.ndim - 1))
    per_input = np.moveaxis(kernel[..., unit], -1, 0)
    return np.fft.rfftn(per_input, axes=spatial_axes).reshape(kernel.shape[-2], -1)


@pytest.mark.parametrize("shape", [(5, 3, 8), (3, 3, 4, 8), (3, 3, 3, 4, 8)])
def test_convolution_aware_spectra_are_real_and_orthogonal_without_noise(shape):
    kernel = as_numpy(kinit.ConvolutionAware(eps_std=0.0, seed=7)(shape))
    for unit in range(shape[-1]):
        spectrum = spectra(kernel, unit)
        assert np.abs(spectrum.imag).max() < 1e-5 * np.abs(spectrum.real).max()
        gram = spectrum.real @ spectrum.real.T
        np.testing.assert_allclose(gram, gram[0, 0] * np.eye(shape[-2]), atol=1e-5 * gram[0, 0])


def test_convolution_aware_orthogonal_in_blocks_when_inputs_exceed_frequencies():
    # A 3-tap 1-D kernel has 2 independent real frequencies: inputs come in
    # orthogonal pairs.
    kernel = as_numpy(kinit.ConvolutionAware(eps_std=0.0, seed=8)((3, 6, 8)))
    for unit in range(8):
        spectrum = spectra(kernel, unit).real
        for block in (slice(0, 2), slice(2, 4), slice(4, 6)):
            gram = spectrum[block] @ spectrum[block].T
            np.testing.assert_allclose(gram, gram[0, 0] * np.eye(2), atol=1e-5 * gram[0, 0])


@pytest.mark.parametrize("shape", [(3, 3, 4, 8), (1, 1, 4, 8)])
def test_convolution_aware_has_he_variance(shape):
    kernel = as_numpy(kinit.ConvolutionAware(eps_std=0.05, seed=9)(shape))
    fan_in = math.prod(shape[:-1])
    assert kernel.var() == pytest.approx(2.0 / fan_in, rel=1e-5)


def test_convolution_aware_noise_breaks_exact_orthogonality():
    quiet = as_numpy(kinit.ConvolutionAware(eps_std=0.0, seed=10)((3, 3, 4, 8)))
    noisy = as_numpy(kinit.ConvolutionAware(eps_std=0.5, seed=10)((3, 3, 4, 8)))
    off_diagonal = []
    for kernel in (quiet, noisy):
        gram = spectra(kernel, 0).real @ spectra(kernel, 0).real.T
        off_diagonal.append(np.abs(gram - np.diag(np.diag(gram))).max() / gram.trace())
    assert off_diagonal[0] < 1e-6 < 1e-2 < off_diagonal[1]


def test_convolution_aware_dense_kernel_is_orthogonal():
    w = as_numpy(kinit.ConvolutionAware(seed=11)((36, 8)))
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)


# ------------------------------------------------------------ Identity, Dirac


def test_identity_dense_returns_its_input():
    x = np.random.default_rng(2).normal(size=(4, 5)).astype("float32")
    layer = keras.layers.Dense(5, use_bias=False, kernel_initializer=kinit.Identity())
    np.testing.assert_array_equal(run_layer(layer, x), x)
    doubled = keras.layers.Dense(5, use_bias=False, kernel_initializer=kinit.Identity(gain=2.0))
    np.testing.assert_array_equal(run_layer(doubled, x), 2 * x)


def test_identity_rectangular_is_a_partial_identity():
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    wide = run_layer(keras.layers.Dense(7, use_bias=False, kernel_initializer=kinit.Identity()), x)
    np.testing.assert_array_equal(wide[:, :5], x)
    assert not wide[:, 5:].any()
    tall = run_layer(keras.layers.Dense(3, use_bias=False, kernel_initializer=kinit.Identity()), x)
    np.testing.assert_array_equal(tall, x[:, :3])


@pytest.mark.parametrize("rank,kernel_size", [(1, 3), (2, 3), (2, 4), (3, 3)], ids=["1d", "2d", "2d-even", "3d"])
def test_dirac_conv_same_returns_its_input(rank, kernel_size):
    x = np.random.default_rng(4).normal(size=(2,) + (5,) * rank + (3,)).astype("float32")
    layer = CONV_LAYERS[rank](3, kernel_size, padding="same", use_bias=False, kernel_initializer=kinit.Dirac())
    np.testing.assert_array_equal(run_layer(layer, x), x)


def test_dirac_grouped_conv_returns_its_input():
    x = np.random.default_rng(5).normal(size=(2, 5, 5, 6)).astype("float32")
    layer = keras.layers.Conv2D(
        6, 3, groups=3, padding="same", use_bias=False, kernel_initializer=kinit.Dirac(groups=3)
    )
    assert tuple(layer(x).shape) == x.shape and tuple(layer.kernel.shape) == (3, 3, 2, 6)
    np.testing.assert_array_equal(run_layer(layer, x), x)


def test_dirac_groups_copy_the_inputs_into_every_group():
    x = np.random.default_rng(6).normal(size=(2, 5, 5, 4)).astype("float32")
    layer = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, kernel_initializer=kinit.Dirac(groups=2))
    y = run_layer(layer, x)
    np.testing.assert_array_equal(y[..., :4], x)
    np.testing.assert_array_equal(y[..., 4:], x)


def test_dirac_and_identity_match_torch():
    if keras.backend.backend() == "jax":
        pytest.skip("checked on the other backends: importing torch next to JAX costs seconds")
    torch = pytest.importorskip("torch")
    for shape, groups in [((3, 3, 4, 6), 2), ((5, 6, 3), 3), ((3, 3, 3, 2, 4), 1)]:
        reference = torch.empty(shape[-1], shape[-2], *shape[:-2])
        torch.nn.init.dirac_(reference, groups=groups)
        expected = np.moveaxis(reference.numpy(), (0, 1), (-1, -2))
        np.testing.assert_array_equal(as_numpy(kinit.Dirac(groups)(shape)), expected)
    eye = torch.nn.init.eye_(torch.empty(7, 4)).numpy().T
    np.testing.assert_array_equal(as_numpy(kinit.Identity()((4, 7))), eye)


# --------------------------------------------------------------------- Sparse


@pytest.mark.parametrize(
    "sparsity,shape,zeros",
    [(0.3, (10, 20000), 3), (0.25, (3, 3, 4, 8), 9), (0.25, (10, 20000), 3), (0.0, (10, 20000), 0), (1.0, (36, 8), 36)],
)
def test_sparse_zero_count_per_output_unit_is_exact(sparsity, shape, zeros):
    w = as_numpy(kinit.Sparse(sparsity, stddev=1.0, seed=12)(shape)).reshape(-1, shape[-1])
    assert ((w == 0).sum(axis=0) == zeros).all()


def test_sparse_non_zeros_are_normal_with_stddev():
    stddev = 0.2
    w = as_numpy(kinit.Sparse(0.3, stddev, seed=13)((10, 20000)))
    values = w[w != 0]
    assert values.size == 7 * 20000
    mean_tol, var_tol = standard_errors(values.size, k=5.0)
    assert abs(values.mean()) < mean_tol(stddev**2)
    assert abs(values.var() - stddev**2) < var_tol(stddev**2, 3.0)


def test_sparse_zero_positions_are_uniform_per_column():
    # Each row is zero in a column with probability 3/10, independently of
    # the column: its zero count over 20,000 columns is Binomial(20000, 0.3).
    w = as_numpy(kinit.Sparse(0.3, 1.0, seed=14)((10, 20000)))
    per_row = (w == 0).sum(axis=1)
    n, p = 20000, 0.3
    assert (np.abs(per_row - n * p) < 5 * math.sqrt(n * p * (1 - p))).all()


# ----------------------------------------------------------------------- ZerO


ZERO_BY_HAND = {
    (3, 3): np.eye(3),
    (4, 2): np.array([[1, 0], [0, 1], [0, 0], [0, 0]]),
    (2, 4): np.array([[1, 1, 1, 1], [1, -1, 1, -1]]) / 2,  # H_2 rows 0-1, / 2^(2/2)
    (3, 5): np.array([[1, 1, 1, 1, 1], [1, -1, 1, -1, 1], [1, 1, -1, -1, 1]]) / 2**1.5,  # H_3 block
}


@pytest.mark.parametrize("shape", list(ZERO_BY_HAND), ids=str)
def test_zero_matches_the_construction_by_hand(shape):
    np.testing.assert_allclose(as_numpy(kinit.ZerO()(shape)), ZERO_BY_HAND[shape], rtol=1e-7)


def test_zero_conv_kernel_has_the_matrix_at_its_centre_only():
    kernel = as_numpy(kinit.ZerO()((3, 3, 2, 4)))
    np.testing.assert_allclose(kernel[1, 1], ZERO_BY_HAND[(2, 4)], rtol=1e-7)
    kernel[1, 1] = 0
    assert not kernel.any()


def test_zero_is_deterministic_and_has_no_seed():
    assert kinit.ZerO().get_config() == {}
    np.testing.assert_array_equal(as_numpy(kinit.ZerO()((8, 16))), as_numpy(kinit.ZerO()((8, 16))))


def test_zero_deep_linear_stack_preserves_the_norm():
    x = np.random.default_rng(7).normal(size=(5, 8)).astype("float32")
    widths = [8, 8, 16, 16, 32, 32, 32, 64, 64, 64]
    stack = keras.Sequential(
        [keras.Input((8,))]
        + [keras.layers.Dense(w, use_bias=False, kernel_initializer=kinit.ZerO()) for w in widths]
    )
    np.testing.assert_allclose(norms(run_layer(stack, x)), norms(x), rtol=1e-5)
    same_width = keras.Sequential(
        [keras.Input((8,))] + [keras.layers.Dense(8, use_bias=False, kernel_initializer=kinit.ZerO()) for _ in range(12)]
    )
    np.testing.assert_array_equal(run_layer(same_width, x), x)


# ------------------------------------------------------- all structured schemes

# (factory, a shape it fills); factories make equal fresh instances.
FILLABLE = {
    "Orthogonal": (lambda: kinit.Orthogonal(1.5, seed=1), (3, 3, 4, 8)),
    "DeltaOrthogonal": (lambda: kinit.DeltaOrthogonal(seed=2), (3, 3, 4, 8)),
    "ConvolutionOrthogonal": (lambda: kinit.ConvolutionOrthogonal(seed=3), (3, 3, 4, 8)),
    "ConvolutionAware": (lambda: kinit.ConvolutionAware(seed=4), (3, 3, 4, 8)),
    "Identity": (lambda: kinit.Identity(0.5), (4, 8)),
    "Dirac": (lambda: kinit.Dirac(groups=2), (3, 3, 4, 8)),
    "Sparse": (lambda: kinit.Sparse(0.5, 0.1, seed=5), (3, 3, 4, 8)),
    "ZerO": (lambda: kinit.ZerO(), (3, 3, 4, 8)),
}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(FILLABLE))
def test_low_precision_is_the_float32_kernel_rounded_once(name, dtype):
    make, shape = FILLABLE[name]
    values = make()(shape, dtype=dtype)
    assert keras.backend.standardize_dtype(values.dtype) == dtype
    rounded = keras.ops.cast(make()(shape, dtype="float32"), dtype)
    np.testing.assert_array_equal(as_numpy(values), as_numpy(rounded))


@pytest.mark.parametrize("name", list(FILLABLE))
def test_float64_is_honoured(name):
    if not float64_available():
        pytest.skip("float64 on JAX needs JAX_ENABLE_X64=1")
    make, shape = FILLABLE[name]
    values = make()(shape, dtype="float64")
    assert keras.backend.standardize_dtype(values.dtype) == "float64"
    values = as_numpy(values)
    if name in ("Identity", "Dirac", "ZerO"):
        np.testing.assert_allclose(values, as_numpy(make()(shape, dtype="float32")), rtol=1e-7)
    else:  # drawn and built in float64, not float32 values widened
        assert (values != values.astype(np.float32)).any()


@pytest.mark.parametrize("name", list(FILLABLE))
def test_integer_dtype_is_refused(name):
    make, shape = FILLABLE[name]
    with pytest.raises(ValueError, match="int32"):
        make()(shape, dtype="int32")


UNFILLABLE = [
    (kinit.Orthogonal(), (5,), "rank >= 2"),
    (kinit.DeltaOrthogonal(), (4, 8), "rank 3, 4 or 5"),
    (kinit.DeltaOrthogonal(), (2, 2, 3, 4), "odd"),
    (kinit.DeltaOrthogonal(), (3, 3, 8, 4), "in <= out"),
    (kinit.ConvolutionOrthogonal(), (4, 8), "rank 3, 4 or 5"),
    (kinit.ConvolutionOrthogonal(), (3, 3, 3, 3, 3, 2, 4), "rank 3, 4 or 5"),
    (kinit.ConvolutionOrthogonal(), (3, 3, 8, 4), "in <= out"),
    (kinit.ConvolutionAware(), (5,), "Dense kernel (in, out) or a convolution kernel"),
    (kinit.ConvolutionAware(), (3, 3, 3, 3, 2, 4), "Dense kernel (in, out) or a convolution kernel"),
    (kinit.ConvolutionAware(eps_std=0.0), (1, 1, 4, 8), "eps_std > 0"),
    (kinit.Identity(), (3, 3, 4, 4), "rank-2 kernel"),
    (kinit.Identity(), (5,), "rank-2 kernel"),
    (kinit.Dirac(), (4, 4), "rank 3, 4 or 5"),
    (kinit.Dirac(groups=4), (3, 3, 4, 6), "divide into groups=4"),
    (kinit.Sparse(), (7,), "rank >= 2"),
    (kinit.ZerO(), (7,), "Dense kernel (in, out) or a convolution kernel"),
    (kinit.ZerO(), (3, 3, 3, 3, 2, 2), "Dense kernel (in, out) or a convolution kernel"),
]


@pytest.mark.parametrize(
    "initializer,shape,requirement", UNFILLABLE, ids=lambda v: str(v) if isinstance(v, tuple) else None
)
def test_unfillable_shape_raises_naming_shape_and_requirement(initializer, shape, requirement):
    with pytest.raises(ValueError) as error:
        initializer(shape)
    message = str(error.value)
    assert type(initializer).__name__ in message
    assert f"shape {shape}" in message
    assert requirement in message


#: Zero-size shapes of the ranks the schemes meet: Dense, Conv2D, a bias, a
#: Conv1D kernel with no spatial extent, and rank-1 / rank-6 shapes no
#: structured scheme could fill if they were not empty.
EMPTY_SHAPES = [(0, 4), (4, 0), (3, 3, 0, 8), (0,), (0, 2, 6), (2, 2, 2, 2, 0, 2)]


@pytest.mark.parametrize("initializer", SCHEMES, ids=lambda i: type(i).__name__)
def test_every_scheme_returns_an_empty_tensor_for_a_zero_size_shape(initializer):
    # One rule, as Keras's built-ins: nothing to fill, an empty tensor of the dtype.
    for shape in EMPTY_SHAPES:
        for dtype in ("float32", "bfloat16"):
            values = initializer(shape, dtype=dtype)
            assert tuple(values.shape) == shape, (shape, dtype)
            assert keras.backend.standardize_dtype(values.dtype) == dtype


def test_empty_calls_draw_nothing():
    initializer = kinit.Orthogonal(seed=4)
    initializer((0, 8))
    np.testing.assert_array_equal(as_numpy(initializer((8, 8))), as_numpy(kinit.Orthogonal(seed=4)((8, 8))))


def test_constant_schemes_give_empty_tensors_of_every_dtype():
    for initializer in (kinit.Zeros(), kinit.Constant(2.0), kinit.Constant([1.0, 2.0, 3.0])):
        for dtype in ("int32", "bool"):
            values = initializer((0, 3), dtype=dtype)
            assert tuple(values.shape) == (0, 3)
            assert keras.backend.standardize_dtype(values.dtype) == dtype


@pytest.mark.parametrize(
    "build,argument",
    [
        (lambda: kinit.Orthogonal(gain=0.0), "gain"),
        (lambda: kinit.DeltaOrthogonal(gain=-1.0), "gain"),
        (lambda: kinit.ConvolutionOrthogonal(gain="2"), "gain"),
        (lambda: kinit.ConvolutionAware(eps_std=-0.1), "eps_std"),
        (lambda: kinit.Identity(gain=float("nan")), "gain"),
        (lambda: kinit.Dirac(groups=0), "groups"),
        (lambda: kinit.Dirac(groups=1.5), "groups"),
        (lambda: kinit.Sparse(sparsity=1.5), "sparsity"),
        (lambda: kinit.Sparse(sparsity=-0.1), "sparsity"),
        (lambda: kinit.Sparse(stddev=0.0), "stddev"),
        (lambda: kinit.Orthogonal(seed=-1), "seed"),
    ],
)
def test_bad_argument_fails_at_construction(build, argument):
    with pytest.raises(ValueError, match=re.escape(f"`{argument}`")):
        build()


# ---------------------------------------------------------- fresh processes

SERIALIZED_MODEL_CODE = """
import json, numpy as np, keras, kinit
model = keras.models.load_model({path!r}, safe_mode=True)
report = {{}}
for layer in model.layers:
    if hasattr(layer, "kernel_initializer"):
        init, kernel = layer.kernel_initializer, keras.ops.convert_to_numpy(layer.kernel)
        # Rebuilt from its stored config, an initializer starts again from
        # call 0: its first call redraws the saved kernel.
        stored = json.loads(json.dumps(init.get_config()))
        redrawn = keras.ops.convert_to_numpy(type(init).from_config(stored)(kernel.shape))
        report[layer.name] = [type(init).__name__, init.get_config(), bool(np.array_equal(redrawn, kernel))]
np.save({output!r}, keras.ops.convert_to_numpy(model(np.load({inputs!r}))))
print(json.dumps(report))
"""


def structured_model() -> keras.Model:
    conv = lambda filters, init, **kw: keras.layers.Conv2D(
        filters, 3, padding="same", kernel_initializer=init, name=type(init).__name__.split(".")[1], **kw
    )
    dense = lambda units, init, name: keras.layers.Dense(units, kernel_initializer=init, name=name)
    image = keras.Input((6, 6, 4))
    maps = [
        conv(4, kinit.DeltaOrthogonal(1.2, seed=1))(image),
        conv(6, kinit.ConvolutionOrthogonal(0.8, seed=2))(image),
        conv(4, kinit.ConvolutionAware(0.1, seed=3))(image),
        conv(4, kinit.Dirac(groups=2), groups=2)(image),
        conv(8, kinit.ZerO())(image),
    ]
    flat = keras.layers.Flatten()(image)
    vectors = [
        dense(16, kinit.Orthogonal(2.0, seed=4), "Orthogonal")(flat),
        dense(16, kinit.Identity(0.5), "Identity")(flat),
        dense(16, kinit.Sparse(0.5, 0.1, seed=5), "Sparse")(flat),
        dense(16, kinit.ConvolutionAware(seed=6), "ConvolutionAware_dense")(flat),
    ]
    outputs = [keras.layers.Flatten()(m) for m in maps] + vectors
    return keras.Model(image, keras.layers.Concatenate()(outputs))


@pytest.mark.slow
def test_saved_model_loads_in_subprocess(tmp_path):
    model = structured_model()
    x = np.random.default_rng(8).normal(size=(2, 6, 6, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "model.keras")
    code = SERIALIZED_MODEL_CODE.format(
        path=str(tmp_path / "model.keras"), output=str(tmp_path / "y.npy"), inputs=str(tmp_path / "x.npy")
    )
    result = run_python(code, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {
        layer.name: [type(layer.kernel_initializer).__name__, layer.kernel_initializer.get_config(), True]
        for layer in model.layers
        if hasattr(layer, "kernel_initializer")
    }
    assert report == json.loads(json.dumps(expected))
    covered = {entry[0] for entry in report.values()}
    assert covered == {f"kinit.{name}" for name in FILLABLE}
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), as_numpy(model(x)))
