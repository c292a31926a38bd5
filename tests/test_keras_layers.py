"""kinit schemes inside the Keras layers that hand them axes or clone them.

Keras >= 3.15's `EinsumDense.build` hands the kernel's input and output axes
to a `keras.initializers.VarianceScaling` (through a clone made with
`from_config`), and `MultiHeadAttention` / `GroupQueryAttention` clone
their initializers once per projection with `from_config(get_config())`.
The variance checks are ported from Keras's own
`test_mha_query_projection_variance` and `test_variance_scaling_with_axes`,
for every fan-based kinit preset.

keras.ops and numpy only: tests/test_backends.py reruns this module on JAX
and PyTorch.
"""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pytest

import kinit
from catalog import public_scheme_classes
from conftest import run_python, standard_errors

#: Every kinit scheme whose variance is read from the fans.
FAN_BASED = [cls for cls in public_scheme_classes() if issubclass(cls, kinit.VarianceScaling)]

#: Kurtosis of each distribution; 3 bounds the truncated normal's (2.36) from above.
KURTOSIS = {"uniform": 1.8, "normal": 3.0, "untruncated_normal": 3.0, "truncated_normal": 3.0}


def as_numpy(x) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def expected_variance(initializer, fan_in: int, fan_out: int) -> float:
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[initializer.mode]
    return initializer.scale / fan


def assert_variance(initializer, kernel, fan_in: int, fan_out: int, label: str):
    values = as_numpy(kernel).ravel()
    expected = expected_variance(initializer, fan_in, fan_out)
    mean_tol, var_tol = standard_errors(values.size)
    kurtosis = KURTOSIS[initializer.distribution]
    assert abs(values.mean()) < mean_tol(expected), label
    assert abs(values.var() - expected) < var_tol(expected, kurtosis), (
        f"{label}: std {values.std():.4f}, formula {expected ** 0.5:.4f}"
    )


# Each layer with (projection name, kernel attribute path, fan_in, fan_out)
# written from the layer's own parameters.
DIM = 32


def multi_head_attention(initializer):
    # Keras's test: num_heads=8, key_dim=16 on a width of 32.
    layer = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=initializer)
    layer.build((None, 10, DIM), (None, 10, DIM))
    projections = [(name, getattr(layer, f"{name}_dense").kernel, DIM, 8 * 16) for name in ("query", "key", "value")]
    return projections + [("output", layer.output_dense.kernel, 8 * 16, DIM)]


def grouped_query_attention(initializer):
    layer = keras.layers.GroupQueryAttention(
        head_dim=16, num_query_heads=8, num_key_value_heads=2, kernel_initializer=initializer
    )
    layer.build((None, 10, DIM), (None, 10, DIM))
    return [
        ("query", layer._query_dense.kernel, DIM, 8 * 16),
        ("key", layer._key_dense.kernel, DIM, 2 * 16),
        ("value", layer._value_dense.kernel, DIM, 2 * 16),
        ("output", layer._output_dense.kernel, 8 * 16, DIM),
    ]


def einsum_dense(initializer):
    layer = keras.layers.EinsumDense("ab,bcd->acd", (4, 8), kernel_initializer=initializer)
    layer.build((None, 64))
    return [("kernel", layer.kernel, 64, 4 * 8)]


LAYERS = [multi_head_attention, grouped_query_attention, einsum_dense]


@pytest.mark.parametrize("build", LAYERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("cls", FAN_BASED, ids=lambda c: c.__name__)
def test_every_projection_gets_the_formula_variance(cls, build):
    initializer = cls(seed=1337)
    for name, kernel, fan_in, fan_out in build(initializer):
        assert_variance(initializer, kernel, fan_in, fan_out, f"{cls.__name__} {build.__name__} {name}")


@pytest.mark.parametrize("name", ["lecun_normal", "glorot_uniform", "he_normal"])
def test_keras_builtins_get_the_same_fans(name):
    # Keras >= 3.15 gets these right too: what the README's Fans section says.
    keras.utils.set_random_seed(1337)
    initializer = keras.initializers.get(name)
    for projection, kernel, fan_in, fan_out in multi_head_attention(name):
        assert_variance(initializer, kernel, fan_in, fan_out, f"{name} {projection}")


def test_variance_scaling_with_axes():
    # Keras's test_variance_scaling_with_axes, with a tolerance of 5 standard errors.
    shape = (32, 4, 16)
    with_axes = kinit.VarianceScaling(2.0, "fan_in", "normal", seed=1234, input_axes=[0], output_axes=[1, 2])
    assert_variance(with_axes, with_axes(shape), 32, 64, "with axes")
    without = kinit.VarianceScaling(2.0, "fan_in", "normal", seed=1234)
    assert_variance(without, without(shape), 32 * 4, 16 * 4, "without axes")


def test_presets_take_the_einsum_dense_hand_over():
    initializer = kinit.GlorotUniform(seed=3)
    assert isinstance(initializer, keras.initializers.VarianceScaling)
    assert initializer.input_axes is None and initializer.output_axes is None
    config = initializer.get_config()
    assert config["input_axes"] is None and config["output_axes"] is None
    handed = kinit.GlorotUniform.from_config({**config, "input_axes": [0], "output_axes": [1, 2]})
    assert (handed.input_axes, handed.output_axes) == ([0], [1, 2])
    assert json.loads(json.dumps(handed.get_config())) == handed.get_config()


def kernels(layer, names):
    return [as_numpy(getattr(layer, f"{name}_dense").kernel) for name in names]


@pytest.mark.parametrize("cls", [kinit.HeNormal, kinit.GlorotUniform, kinit.Orthogonal])
def test_seeded_instance_gives_every_projection_its_own_values(cls):
    layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, kernel_initializer=cls(seed=5))
    layer.build((None, 6, 32), (None, 6, 32))
    query, key, value = kernels(layer, ("query", "key", "value"))
    assert query.shape == key.shape == value.shape
    assert not np.array_equal(query, key)
    assert not np.array_equal(query, value)
    assert not np.array_equal(key, value)


def nth_call(initializer, shape, n: int):
    """Call `n` (from 0) of `initializer` on `shape`."""
    for _ in range(n):
        initializer(shape)
    return as_numpy(initializer(shape))


def test_projections_continue_the_instance_stream():
    # The clones MultiHeadAttention and EinsumDense make while building draw
    # calls 0, 1, 2, 3 of the instance, in build order; the instance goes on at 4.
    initializer = kinit.HeNormal(seed=5)
    layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, kernel_initializer=initializer)
    layer.build((None, 6, 32), (None, 6, 32))
    reference = kinit.HeNormal(seed=5, input_axes=[0], output_axes=[1, 2])
    for name in ("query", "key", "value"):
        np.testing.assert_array_equal(as_numpy(getattr(layer, f"{name}_dense").kernel), as_numpy(reference((32, 4, 8))))
    np.testing.assert_array_equal(as_numpy(initializer((5, 5))), nth_call(kinit.HeNormal(seed=5), (5, 5), 4))


def test_live_config_continues_and_serialized_config_restarts():
    initializer = kinit.LecunNormal(seed=9)
    first = as_numpy(initializer((16, 16)))
    live = kinit.LecunNormal.from_config(initializer.get_config())
    np.testing.assert_array_equal(as_numpy(live((16, 16))), nth_call(kinit.LecunNormal(seed=9), (16, 16), 1))
    np.testing.assert_array_equal(as_numpy(initializer((16, 16))), nth_call(kinit.LecunNormal(seed=9), (16, 16), 2))
    # Through JSON (what a .keras file stores), a copy, or Keras's
    # serialization: plain data, which starts again at call 0.
    for config in (json.loads(json.dumps(initializer.get_config())), dict(initializer.get_config())):
        np.testing.assert_array_equal(as_numpy(kinit.LecunNormal.from_config(config)((16, 16))), first)
    restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    np.testing.assert_array_equal(as_numpy(restored((16, 16))), first)


def test_a_clone_with_another_seed_has_its_own_stream():
    initializer = kinit.HeNormal(seed=1)
    initializer((8, 8))
    config = initializer.get_config()
    config["seed"] = 2
    np.testing.assert_array_equal(
        as_numpy(kinit.HeNormal.from_config(config)((8, 8))), as_numpy(kinit.HeNormal(seed=2)((8, 8)))
    )


MHA_CODE = """
import hashlib, keras, kinit
def mha_digest():
    layer = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, kernel_initializer=kinit.GlorotUniform(seed=21))
    layer.build((None, 6, 32), (None, 6, 32))
    weights = [keras.ops.convert_to_numpy(w) for w in layer.weights]
    return hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()
"""


@pytest.mark.slow
def test_seeded_attention_is_reproducible_in_a_new_process():
    namespace = {}
    exec(MHA_CODE, namespace)
    here = namespace["mha_digest"]()
    assert namespace["mha_digest"]() == here
    result = run_python(MHA_CODE + "\nprint(mha_digest())", backend=keras.backend.backend())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == here


def test_constant_arrays_survive_save_and_load(tmp_path):
    kernel = kinit.Constant([[1.0], [-2.0], [0.5], [4.0]])  # one row per input, broadcast over units
    bias = kinit.Constant(np.array([0.1, -0.2, 0.3], dtype="float32"))
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, kernel_initializer=kernel, bias_initializer=bias, name="dense")]
    )
    path = tmp_path / "constant.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True).get_layer("dense")
    assert loaded.kernel_initializer.get_config() == kernel.get_config() == {"value": [[1.0], [-2.0], [0.5], [4.0]]}
    assert loaded.bias_initializer.get_config() == bias.get_config()
    np.testing.assert_allclose(as_numpy(loaded.kernel), np.tile([[1.0], [-2.0], [0.5], [4.0]], (1, 3)))
    np.testing.assert_allclose(as_numpy(loaded.bias), [0.1, -0.2, 0.3], rtol=1e-7)
    # The rebuilt initializers fill the same values as the originals.
    np.testing.assert_array_equal(as_numpy(loaded.kernel_initializer((4, 3))), as_numpy(kernel((4, 3))))
