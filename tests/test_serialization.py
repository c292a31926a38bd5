"""Models using kinit schemes save and load, also in a fresh process."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import kinit
from catalog import SCHEMES, layer_for, shape_for
from conftest import run_python


def test_catalog_covers_every_export():
    # The catalog is built from the exports; this guards the discovery itself.
    exported = {type(s) for s in SCHEMES}
    assert {kinit.HeNormal, kinit.Zeros, kinit.FanInUniform, kinit.TruncatedNormal} <= exported


@pytest.mark.parametrize("initializer", SCHEMES, ids=lambda i: type(i).__name__)
def test_config_round_trip_rebuilds_an_equal_initializer(initializer):
    config = json.loads(json.dumps(initializer.get_config()))  # plain JSON: what a .keras file stores
    rebuilt = type(initializer).from_config(config)
    assert rebuilt.get_config() == config
    shape = shape_for(initializer)
    fresh = type(initializer).from_config(config)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(fresh(shape)), keras.ops.convert_to_numpy(rebuilt(shape))
    )


@pytest.mark.parametrize("name", ["kinit>HeNormal", "kinit>GlorotUniform", "kinit>Zeros"])
def test_string_names_resolve(name):
    initializer = keras.initializers.get(name)
    assert type(initializer).__name__ == "kinit." + name.split(">")[1]
    assert type(initializer).__module__.startswith("kinit.")


@pytest.mark.parametrize(
    "alias,cls",
    [("XavierNormal", kinit.GlorotNormal), ("XavierUniform", kinit.GlorotUniform),
     ("KaimingNormal", kinit.HeNormal), ("KaimingUniform", kinit.HeUniform)],
)
def test_alias_names_resolve_and_serialize_under_the_class_name(alias, cls):
    initializer = keras.initializers.get(f"kinit>{alias}")
    assert type(initializer) is cls
    # The alias adds a name to look up; the class still saves under its own.
    assert keras.saving.serialize_keras_object(initializer)["registered_name"] == f"kinit>{cls.__name__.split('.')[-1]}"
    assert keras.saving.get_registered_name(cls) == f"kinit>{cls.__name__.split('.')[-1]}"


def test_config_dicts_resolve():
    initializer = keras.initializers.get(
        {"class_name": "kinit>HeNormal", "config": {"negative_slope": 0.2, "seed": 3}}
    )
    assert isinstance(initializer, kinit.HeNormal)
    assert initializer.effective_gain() == pytest.approx(kinit.calculate_gain("leaky_relu", 0.2))


def build_model():
    inputs = keras.Input((5,))
    outputs = [layer_for(s, f"layer_{i}_{type(s).__name__}")(inputs) for i, s in enumerate(SCHEMES)]
    outputs.append(
        keras.layers.Dense(3, bias_initializer=kinit.Constant(0.25), name="constant_bias")(inputs)
    )
    return keras.Model(inputs, keras.layers.Concatenate()(outputs))


@pytest.mark.slow
def test_saved_model_loads_in_fresh_process(tmp_path):
    model = build_model()
    path = tmp_path / "model.keras"
    model.save(path)
    result = run_python(
        f"""
        import json, numpy as np, keras, kinit
        model = keras.models.load_model({str(path)!r}, safe_mode=True)
        np.savez({str(tmp_path / "weights.npz")!r}, *[w for w in model.get_weights()])
        configs = {{l.name: [l.kernel_initializer.get_config(), type(l.kernel_initializer).__name__,
                             l.bias_initializer.get_config()]
                   for l in model.layers if hasattr(l, "kernel_initializer")}}
        print(json.dumps(configs))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded = np.load(tmp_path / "weights.npz")
    for i, weight in enumerate(model.get_weights()):
        np.testing.assert_array_equal(loaded[f"arr_{i}"], weight)
    expected = {
        l.name: [l.kernel_initializer.get_config(), type(l.kernel_initializer).__name__, l.bias_initializer.get_config()]
        for l in model.layers
        if hasattr(l, "kernel_initializer")
    }
    assert json.loads(result.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(expected))


@pytest.mark.slow
def test_loading_without_import_fails_naming_kinit(tmp_path):
    # Zeros and RandomNormal share their names with Keras built-ins: they must
    # fail too, not load silently as Keras's classes.
    paths = {}
    for name, initializer in [("he", kinit.HeNormal()), ("zeros", kinit.Zeros()), ("normal", kinit.RandomNormal())]:
        paths[name] = str(tmp_path / f"{name}.keras")
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer=initializer)]).save(paths[name])
    result = run_python(
        f"""
        import keras
        for name, path in {paths!r}.items():
            try:
                keras.models.load_model(path, safe_mode=True)
                print(name, "LOADED")
            except Exception as error:
                print(name, "FAILED", "Could not interpret initializer identifier" in str(error), "kinit>" in str(error))
        """
    )
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.strip().splitlines()[-3:])
    assert lines == ["he FAILED True True", "normal FAILED True True", "zeros FAILED True True"]


def test_config_of_a_subclass_without_arguments():
    class Halves(kinit.KinitInitializer):
        def generate(self, shape, dtype):
            return keras.ops.full(shape, 0.5, dtype=dtype)

    assert Halves().get_config() == {}
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(Halves()((2,))), [0.5, 0.5])
