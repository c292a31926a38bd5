"""kinit.mup: base shapes, μP initialization, optimizers, layers, coordinate check."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import warnings

import keras
import numpy as np
import pytest

import kinit
import mup_cases as cases
from conftest import ROOT, run_python, standard_errors


def test_roles_and_multipliers_of_a_dense_mlp():
    model = cases.mlp(256)
    report = kinit.mup.set_base_shapes(model, cases.mlp(32), cases.mlp(64))
    got = [(row.weight, row.role, row.width_mult, row.base_shape) for row in report]
    assert got == [
        ("kernel", "input", 8.0, (None, 32)),
        ("bias", "vector", 8.0, (32,)),
        ("kernel", "hidden", 8.0, (32, 32)),
        ("bias", "vector", 8.0, (32,)),
        ("kernel", "output", 8.0, (32, None)),
        ("bias", "fixed", 1.0, (None,)),
    ]
    assert model.layers[-1].width_mult == 8.0
    assert "Readout: forward multiplier 1/8" in report[4].note


def test_roles_and_multipliers_of_a_small_transformer():
    model = cases.transformer(64)
    report = kinit.mup.set_base_shapes(model, cases.transformer(16), cases.transformer(32))
    roles = {f"{row.path}/{row.weight}": (row.role, row.width_mult, row.fan_in_mult, row.fan_out_mult) for row in report}
    attention = model.layers[2].name
    assert roles[f"{model.layers[1].name}/embeddings"] == ("input", 4.0, 1.0, 4.0)
    # (d_model, heads, head_dim): the heads stay 2, d_model and head_dim grow 4×.
    assert roles[f"{attention}/query/kernel"] == ("hidden", 4.0, 4.0, 4.0)
    assert roles[f"{attention}/query/bias"] == ("vector", 4.0, 1.0, 4.0)
    assert roles[f"{attention}/attention_output/kernel"] == ("hidden", 4.0, 4.0, 4.0)
    assert {role for key, (role, *_) in roles.items() if "layer_normalization" in key} == {"vector"}
    dense = [key for key in roles if key.endswith("/kernel") and key.split("/")[0].startswith("dense")]
    assert [roles[key][0] for key in dense] == ["hidden", "hidden"]
    readout = [key for key in roles if key.startswith("readout")]
    assert [roles[key][0] for key in readout] == ["output", "fixed"]
    # The attention layer learned its base key size: 8 at base, 32 now → scale √8 / 32.
    assert model.layers[2].base_key_dim == 8
    assert model.layers[2].attention_scale == pytest.approx(math.sqrt(8) / 32)


def test_without_delta_the_dimensions_that_differ_from_the_base_are_widths():
    model = cases.mlp(48)
    report = kinit.mup.set_base_shapes(model, cases.mlp(16))
    assert [row.role for row in report] == ["input", "vector", "hidden", "vector", "output", "fixed"]
    assert report[2].width_mult == 3.0


def test_a_model_at_the_base_width_needs_a_delta_model():
    with pytest.warns(UserWarning, match="standard parametrization"):
        report = kinit.mup.set_base_shapes(cases.mlp(16), cases.mlp(16))
    assert {row.role for row in report} == {"fixed"}
    report = kinit.mup.set_base_shapes(cases.mlp(16), cases.mlp(16), cases.mlp(32))
    assert report[2].role == "hidden" and report[2].width_mult == 1.0


def test_models_of_another_architecture_are_refused():
    with pytest.raises(ValueError, match="has 6 variables and `base_model` has 3"):
        kinit.mup.set_base_shapes(cases.mlp(32), cases.mlp(16, bias=False))
    other = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16), keras.layers.Dense(16),
                              keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="variable #4 differs"):
        kinit.mup.set_base_shapes(cases.mlp(32), other)
    with pytest.raises(ValueError, match="argument `base_model` must be a built keras.Model"):
        kinit.mup.set_base_shapes(cases.mlp(32), "mlp")


def test_a_readout_whose_units_grow_is_refused():
    def model(width):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), kinit.mup.Readout(width)])

    with pytest.raises(ValueError, match="Readout .* has kernel role 'hidden'"):
        kinit.mup.set_base_shapes(model(32), model(16))


def test_keras_attention_with_a_growing_key_size_warns():
    plain = keras.layers.MultiHeadAttention
    with pytest.warns(UserWarning, match="keeps the 1/√d attention scale"):
        kinit.mup.set_base_shapes(cases.transformer(32, attention=plain), cases.transformer(8, attention=plain),
                                  cases.transformer(16, attention=plain))
    # Only the number of heads grows: 1/√d is right, no warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kinit.mup.set_base_shapes(cases.transformer(32, heads=8, attention=plain),
                                  cases.transformer(8, heads=2, attention=plain),
                                  cases.transformer(16, heads=4, attention=plain))
    assert not [w for w in caught if "attention scale" in str(w.message)]


def test_calling_set_base_shapes_again_replaces_the_record():
    model = cases.mlp(64)
    kinit.mup.set_base_shapes(model, cases.mlp(16))
    kinit.mup.set_base_shapes(model, cases.mlp(32))
    assert kinit.mup.get_base_shapes(model)[2].width_mult == 2.0
    kernel_init = model.layers[0].kernel_initializer
    assert isinstance(kernel_init, kinit.mup.BaseShapes)
    assert not isinstance(kernel_init.initializer, kinit.mup.BaseShapes)


def test_records_no_config_can_hold_are_kept_in_memory_with_a_warning():
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w

    def model(width):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), Scale(), kinit.mup.Readout(2)])

    wide = model(32)
    with pytest.warns(UserWarning, match=r"1 variable\(s\) .* kept in memory only"):
        report = kinit.mup.set_base_shapes(wide, model(8))
    assert report.by_path()[f"{wide.layers[1].name}/w"].note == "in memory only"
    assert kinit.mup.get_base_shapes(wide).by_path()[f"{wide.layers[1].name}/w"].role == "vector"


# --- initialization ------------------------------------------------------------


def _variance(weight) -> float:
    return float(np.var(keras.ops.convert_to_numpy(weight)))


def test_mup_initialization_scales_each_role_by_its_multiplier():
    wide, base = cases.mlp(1024, inputs=256, classes=64, readout=False), cases.mlp(64, inputs=256, classes=64, readout=False)
    kinit.mup.set_base_shapes(wide, base)
    kinit.initialize(wide, policy=kinit.mup.MupPolicy(zero_readout=False), seed=0)
    m = 1024 / 64
    first, second, out = (layer.kernel for layer in wide.layers)
    _, var_tol = standard_errors(first.shape[0] * first.shape[1])
    # Input-like: He at the (finite) fan-in, as in SP.
    assert abs(_variance(first) - 2 / 256) < var_tol(2 / 256)
    # Hidden: He at the base fan-in ÷ m = He at the real fan-in.
    expected = 2 / 64 / m
    _, var_tol = standard_errors(second.shape[0] * second.shape[1])
    assert abs(_variance(second) - expected) < var_tol(expected)
    # Output of a plain Dense (Table 3): Glorot at the base shape ÷ m².
    expected = 2 / (64 + 64) / m**2
    _, var_tol = standard_errors(out.shape[0] * out.shape[1])
    assert abs(_variance(out) - expected) < var_tol(expected, kurtosis=1.8)  # uniform: kurtosis 9/5


def test_a_readout_keeps_its_base_variance_and_starts_at_zero_by_default():
    wide = cases.mlp(1024, inputs=256, classes=64)
    kinit.mup.set_base_shapes(wide, cases.mlp(64, inputs=256, classes=64))
    report = kinit.initialize(wide, policy=kinit.mup.MupPolicy(zero_readout=False), seed=0)
    kernel = wide.layers[-1].kernel
    expected = 2 / (64 + 64)  # Glorot at the base shape, width-independent (Table 8)
    _, var_tol = standard_errors(kernel.shape[0] * kernel.shape[1])
    assert abs(_variance(kernel) - expected) < var_tol(expected, kurtosis=1.8)
    assert "Readout: Var(base shape), forward × 1/m (Table 8)" in report[4].reason
    report = kinit.initialize(wide, policy="mup", seed=0)
    assert not np.any(keras.ops.convert_to_numpy(kernel))
    assert report[4].scheme == "zeros" and "output-like, width multiplier 16" in report[4].reason


def test_the_report_names_each_role_and_multiplier():
    model = cases.mlp(128)
    kinit.mup.set_base_shapes(model, cases.mlp(32))
    report = kinit.initialize(model, policy="mup", seed=0)
    reasons = [row.reason.split(":")[0] for row in report]
    assert reasons == [
        "input-like, width multiplier 4",
        "vector-like, width multiplier 4",
        "hidden (matrix-like), width multiplier 4",
        "vector-like, width multiplier 4",
        "output-like, width multiplier 4",
        "fixed (no width dimension), width multiplier 1",
    ]
    assert report[2].scheme.startswith("He normal, gain √2 at base shape (32, 32) ÷ m")


def test_mup_initialization_is_reproducible_and_zero_query_is_optional():
    def weights(policy):
        model = cases.transformer(32)
        kinit.mup.set_base_shapes(model, cases.transformer(8), cases.transformer(16))
        kinit.initialize(model, policy=policy, seed=3)
        return model, [keras.ops.convert_to_numpy(w) for w in model.weights]

    _, first = weights("mup")
    model, second = weights("mup")
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert np.any(keras.ops.convert_to_numpy(model.layers[2].query_dense.kernel))
    model, _ = weights(kinit.mup.MupPolicy(zero_query=True))
    assert not np.any(keras.ops.convert_to_numpy(model.layers[2].query_dense.kernel))
    assert np.any(keras.ops.convert_to_numpy(model.layers[2].key_dense.kernel))


def test_mup_initialization_needs_base_shapes():
    with pytest.raises(ValueError, match=r"no μP base shapes\. Call kinit\.mup\.set_base_shapes"):
        kinit.initialize(cases.mlp(16), policy="mup")


def test_the_options_of_initialize_apply_to_a_policy_object_too():
    model = cases.mlp(32)
    kinit.mup.set_base_shapes(model, cases.mlp(16))
    for policy in ("mup", kinit.mup.MupPolicy()):
        report = kinit.initialize(model, policy=policy, relu_bias=0.1)
        assert report[1].scheme == "constant 0.1"
    with pytest.raises(ValueError, match=r"argument `zero_readout` must be True or False; received zero_readout=1"):
        kinit.mup.MupPolicy(zero_readout=1)


# --- optimizers ----------------------------------------------------------------


def test_per_variable_step_sizes_follow_the_table_on_tensorflow():
    rows = cases.check_step_sizes()
    assert len(rows) == 4 * 6


def test_weight_decay_follows_microsoft_mup():
    cases.check_weight_decay()


def test_learning_rate_factors_are_readable_after_build():
    model = cases.rectangular(readout=False)
    optimizer = kinit.mup.SGD(0.1)
    optimizer.build(model.trainable_variables)
    assert list(optimizer.learning_rate_factors.values()) == cases.EXPECTED_FACTORS["sgd", False]


def test_optimizers_refuse_variables_without_base_shapes():
    model = cases.mlp(16)
    model.compile(optimizer=kinit.mup.Adam(1e-3), loss="mse")
    with pytest.raises(ValueError, match=r"6 of 6 variables have no μP base shapes .*set_base_shapes"):
        model.train_on_batch(np.zeros((2, 12)), np.zeros((2, 3)))


@pytest.mark.parametrize("cls", [kinit.mup.Adam, kinit.mup.AdamW, kinit.mup.SGD])
def test_optimizers_serialize(cls):
    optimizer = cls(learning_rate=0.05, decoupled_weight_decay=True)
    config = keras.optimizers.serialize(optimizer)
    assert config["registered_name"] == f"kinit.mup>{cls.__name__.split('.')[-1]}"
    restored = keras.optimizers.deserialize(config)
    assert type(restored) is cls and restored.decoupled_weight_decay is True
    with pytest.raises(ValueError, match="argument `decoupled_weight_decay` must be True or False"):
        cls(decoupled_weight_decay="yes")


def test_a_readout_and_a_plain_dense_readout_train_the_same():
    # Table 8 (Readout: 1/m forward, unscaled Adam rate) and Table 3 (plain
    # Dense: Adam rate ÷ m) are one parametrization; from the same (zero)
    # readout they follow the same trajectory — exactly so with ε → 0, as the
    # Readout's gradients are m = 8 times smaller and meet Adam's ε sooner.
    outputs = []
    x = np.random.default_rng(0).normal(size=(16, 12)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, 16)
    for readout in (True, False):
        keras.utils.set_random_seed(0)
        model = cases.mlp(128, readout=readout)
        kinit.mup.set_base_shapes(model, cases.mlp(16, readout=readout))
        kinit.initialize(model, policy="mup", seed=0)
        model.compile(optimizer=kinit.mup.Adam(1e-2, epsilon=1e-12),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):
            model.train_on_batch(x, y)
        outputs.append(keras.ops.convert_to_numpy(model(x)))
    assert np.allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-6)


# --- layers ----------------------------------------------------------------------


def test_readout_multiplies_its_input_and_round_trips():
    layer = kinit.mup.Readout(3, output_multiplier=2.0, width_mult=4.0, kernel_initializer="ones", use_bias=False)
    x = np.ones((1, 5), dtype="float32")
    assert np.allclose(keras.ops.convert_to_numpy(layer(x)), 5 * 2.0 / 4.0)
    restored = kinit.mup.Readout.from_config(layer.get_config())
    assert (restored.output_multiplier, restored.width_mult, restored.units) == (2.0, 4.0, 3)
    assert layer.name.startswith("readout")
    with pytest.raises(ValueError, match="argument `output_multiplier` must be a finite number > 0"):
        kinit.mup.Readout(3, output_multiplier=0)
    with pytest.raises(ValueError, match="argument `units` must be an integer >= 1"):
        kinit.mup.Readout(0)


def test_attention_logits_are_scaled_by_the_multiplier_over_key_dim():
    x = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    for layer, scale in (
        (kinit.mup.MultiHeadAttention(2, 8), 1 / math.sqrt(8)),  # before set_base_shapes: Keras's 1/√d
        (kinit.mup.MultiHeadAttention(2, 8, base_key_dim=2), math.sqrt(2) / 8),
        (kinit.mup.MultiHeadAttention(2, 8, attention_multiplier=8.0), 1.0),
    ):
        _, scores = layer(x, x, return_attention_scores=True)
        q = keras.ops.convert_to_numpy(layer.query_dense(x))
        k = keras.ops.convert_to_numpy(layer.key_dense(x))
        logits = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
        expected = np.exp(logits - logits.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        assert layer.attention_scale == pytest.approx(scale)
        assert np.allclose(keras.ops.convert_to_numpy(scores), expected, atol=1e-5)
    restored = kinit.mup.MultiHeadAttention.from_config(layer.get_config())
    assert restored.attention_multiplier == 8.0 and restored.attention_scale == pytest.approx(1.0)


# --- persistence -------------------------------------------------------------------


@pytest.mark.slow
def test_save_load_and_clone_keep_the_record_in_a_fresh_process(tmp_path):
    path = tmp_path / "mup.keras"
    model = cases.trained_transformer()
    model.save(path)
    expected = cases.continue_training(model)
    np.savez(tmp_path / "expected.npz", *expected)
    (tmp_path / "record.json").write_text(json.dumps(cases.record_rows(model)))
    (tmp_path / "factors.json").write_text(json.dumps(model.optimizer.learning_rate_factors))
    code = f"""
        import json, sys
        import keras, numpy as np
        import kinit
        sys.path.insert(0, "tests")
        import mup_cases as cases
        loaded = keras.models.load_model({str(path)!r})
        rows = json.loads(json.dumps(cases.record_rows(loaded)))
        assert rows == json.load(open({str(tmp_path / "record.json")!r})), rows
        assert loaded.optimizer.learning_rate_factors == json.load(open({str(tmp_path / "factors.json")!r}))
        expected = np.load({str(tmp_path / "expected.npz")!r})
        for i, value in enumerate(cases.continue_training(loaded)):
            assert np.allclose(value, expected[f"arr_{{i}}"], atol=1e-6), i
        clone = keras.models.clone_model(loaded)
        assert json.loads(json.dumps(cases.record_rows(clone))) == rows
        assert clone.layers[2].attention_scale == loaded.layers[2].attention_scale
        clone.compile(optimizer=kinit.mup.Adam(1e-3), loss="mse")
        clone.optimizer.build(clone.trainable_variables)
        assert clone.optimizer.learning_rate_factors == loaded.optimizer.learning_rate_factors
        print("ok")
    """
    result = run_python(code, cwd=ROOT)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_optimizers_and_persistence_on_other_backends(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (make test installs it)")
    code = f"""
        import sys
        sys.path.insert(0, "tests")
        import keras, kinit
        import mup_cases as cases
        cases.check_step_sizes()
        if keras.backend.backend() == "jax":
            cases.check_step_sizes(stateless=True)
        cases.check_weight_decay()
        cases.check_save_load_clone({str(tmp_path / "model.keras")!r})
        print("ok", keras.backend.backend())
    """
    result = run_python(code, backend=backend, cwd=ROOT)
    assert result.returncode == 0 and f"ok {backend}" in result.stdout, result.stderr[-3000:]


# --- coordinate check ----------------------------------------------------------------


def _coord_mlp(mup: bool):
    def build(width):
        def model(w):
            out = kinit.mup.Readout(10, use_bias=False) if mup else keras.layers.Dense(10, use_bias=False)
            return keras.Sequential([keras.Input((32,)), keras.layers.Dense(w, use_bias=False), keras.layers.ReLU(),
                                     keras.layers.Dense(w, use_bias=False), keras.layers.ReLU(), out])

        built = model(width)
        if mup:
            kinit.mup.set_base_shapes(built, model(64), model(128))
            kinit.initialize(built, policy="mup")
        else:
            kinit.initialize(built, policy="he_normal")
        return built

    return build


@pytest.mark.slow
def test_coord_check_finds_sp_growing_and_mup_flat(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 32)).astype("float32"), rng.integers(0, 10, 64)
    widths = [64, 128, 256, 512]
    sp = kinit.mup.coord_check(_coord_mlp(False), widths, x, y, steps=3, seeds=2,
                               optimizer=keras.optimizers.Adam(1e-2))
    mup = kinit.mup.coord_check(_coord_mlp(True), widths, x, y, steps=3, seeds=2, optimizer=kinit.mup.Adam(1e-2))
    sp_output, mup_output = sp.layers()[-1], mup.layers()[-1]
    sp_summary, mup_summary = sp.summary(), mup.summary()
    print(sp_summary, mup_summary, sep="\n")
    # After one Adam step the SP output grows about ∝ width (slope ≈ 1).
    for step in (2, 3):
        assert sp_summary.row(sp_output, step).verdict == "growing"
        assert sp_summary.row(sp_output, step).slope > 0.6
        assert mup_summary.row(mup_output, step).verdict == "flat"
    assert sp_summary.row(sp_output, 1).verdict == "flat"      # He init: fine at step 1
    assert mup_summary.row(mup_output, 1).verdict == "zero"    # zero readout
    assert {row.verdict for row in mup_summary if row.step > 1} == {"flat"}
    frame = mup.to_dataframe()
    assert list(frame.columns[:7]) == list(kinit.mup.CoordCheckReport.columns)
    assert len(frame) == len(mup.layers()) * 3 * len(widths)
    assert set(frame["seeds"]) == {2}
    png = mup.plot(str(tmp_path / "coord.png"), title="μP")
    assert (tmp_path / "coord.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.endswith("coord.png")


def test_coord_check_validates_its_arguments():
    x, y = np.zeros((4, 32), "float32"), np.zeros(4, "int32")
    with pytest.raises(ValueError, match="at least two distinct widths"):
        kinit.mup.coord_check(_coord_mlp(False), [64], x, y)
    with pytest.raises(ValueError, match="argument `steps` must be an integer >= 1"):
        kinit.mup.coord_check(_coord_mlp(False), [64, 128], x, y, steps=0)
    with pytest.raises(ValueError, match="argument `optimizer` must be None"):
        kinit.mup.coord_check(_coord_mlp(False), [64, 128], x, y, optimizer="adam", steps=1, seeds=1)


def test_report_to_dataframe_and_its_pandas_message(monkeypatch):
    model = cases.mlp(32)
    report = kinit.mup.set_base_shapes(model, cases.mlp(16))
    frame = report.to_dataframe()
    assert list(frame.columns) == list(report.columns) + ["fan_in_mult", "fan_out_mult"]
    assert frame["role"].tolist() == [row.role for row in report]
    init = kinit.initialize(model, seed=0)
    assert "initializer" not in init.to_dataframe().columns  # not shown in the rows' repr
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="needs pandas"):
        report.to_dataframe()


# --- the example ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_example_quick_mode_runs_on_a_synthetic_stand_in(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import fashion_mnist_data
    import mup_transfer

    data = fashion_mnist_data.write_synthetic(tmp_path / "data", n_train=600, n_test=10)
    out = tmp_path / "out"
    summary = mup_transfer.main(["--quick", "--quiet", "--data-dir", str(data), "--output-dir", str(out)])
    for name in ("coord_check.csv", "coord_check.png", "transfer.csv", "transfer.md",
                 "transfer.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    coords = summary["coord_check"]
    assert coords["μP"]["1"]["verdict"] == "zero"            # the readout starts at zero
    assert coords["SP"]["3"]["ratio"] > 2 * coords["μP"]["3"]["ratio"]
    assert set(summary["best_log2_lr"]) == {"SP 64", "SP 256", "μP 64", "μP 256"}
    table = (out / "transfer.md").read_text().splitlines()
    assert table[0] == "| log2 lr | SP w=64 | SP w=256 | μP w=64 | μP w=256 |" and len(table) == 2 + 3
    with open(out / "coord_check.csv") as stream:
        assert sum(1 for _ in stream) == 1 + 2 * 5 * 3 * 3  # header + 2 parametrizations × 5 layers × 3 steps × 3 widths


class CoordTower(keras.Model):
    """A subclassed MLP with an op between its layers: coord_check reads it through the model map."""

    def __init__(self, width):
        super().__init__()
        self.hidden = keras.layers.Dense(width, use_bias=False, name="hidden")
        self.head = keras.layers.Dense(10, use_bias=False, name="head")

    def call(self, x):
        return self.head(keras.ops.relu(self.hidden(x)))


def test_coord_check_takes_a_subclassed_model_and_records_every_layer_that_runs():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 10, 16)

    def build(width):
        model = CoordTower(width)
        model(x[:1])
        return model

    report = kinit.mup.coord_check(build, [16, 32], x, y, steps=1, seeds=1, optimizer=keras.optimizers.SGD(0.0))
    assert report.layers() == ["hidden", "head"]
    keras.utils.set_random_seed(0)  # coord_check's run of width 16 used seed 0
    model = build(16)
    hidden = float(np.mean(np.abs(keras.ops.convert_to_numpy(model.hidden(x)))))
    row = next(r for r in report if r.path == "hidden" and r.width == 16)
    assert row.l1 == pytest.approx(hidden, rel=1e-5)
