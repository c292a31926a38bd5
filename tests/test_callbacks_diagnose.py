"""`diagnose`: the table a user reads right after building a model."""

import sys

import keras
import numpy as np
import pytest

import kinit
from kinit.callbacks import diagnose
from kinit.callbacks.rows import ROW_KEYS

RNG = np.random.default_rng(4)
X = RNG.normal(size=(32, 10)).astype("float32")
Y = RNG.integers(0, 3, size=32)


def classifier(compiled=True):
    model = keras.Sequential([
        keras.layers.Dense(12, "tanh", kernel_initializer=kinit.GlorotNormal(seed=1), name="dense"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.Dropout(0.5, name="drop"),
        keras.layers.Dense(3, "softmax", name="head"),
    ])  # no Input: diagnose builds it on x
    if compiled:
        model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_activation_std_per_layer_is_the_std_of_the_layer_output():
    model = classifier()
    report = diagnose(model, X)
    stds = {r["path"]: r["std"] for r in report.rows if r["kind"] == "activation"}
    kernel, bias = model.get_layer("dense").get_weights()
    hidden = np.tanh(X.astype(np.float64) @ kernel + bias)
    assert list(stds) == ["dense", "norm", "drop", "head"]
    assert stds["dense"] == pytest.approx(hidden.std(), rel=1e-5)
    assert stds["drop"] == pytest.approx(stds["norm"], rel=1e-6)  # inference mode: dropout is off


def test_rows_share_one_schema_and_cover_every_variable():
    report = diagnose(classifier(), X, Y)
    assert all(tuple(row) == ROW_KEYS for row in report.rows)
    weights = {(r["path"], r["name"]) for r in report.rows if r["kind"] == "weight"}
    assert weights == {("dense", "kernel"), ("dense", "bias"), ("norm", "gamma"), ("norm", "beta"),
                       ("norm", "moving_mean"), ("norm", "moving_variance"),
                       ("head", "kernel"), ("head", "bias")}
    gradients = {(r["path"], r["name"]) for r in report.rows if r["kind"] == "gradient"}
    assert gradients == weights - {("norm", "moving_mean"), ("norm", "moving_variance")}


def test_looking_does_not_change_the_model():
    model = classifier()
    model.build((None, 10))
    before = [w.copy() for w in model.get_weights()]
    diagnose(model, X * 5 + 3, Y)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_gradients_need_targets_and_a_loss():
    assert diagnose(classifier(), X).notes == [
        "gradients are not logged: the probe data has no targets; pass probe_data=(x, y)"]
    assert "has no loss" in diagnose(classifier(compiled=False), X, Y).notes[0]
    report = diagnose(classifier(compiled=False), X, Y, loss="sparse_categorical_crossentropy")
    assert report.notes == [] and any(r["kind"] == "gradient" for r in report.rows)


def test_printing_gives_a_table_then_the_findings_then_the_notes():
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, kernel_initializer="zeros", name="flat"),
                              keras.layers.Dense(2, kernel_initializer="zeros", name="head")])
    report = diagnose(model, X)
    lines = str(report).splitlines()
    assert lines[0].split()[:4] == ["path", "kind", "name", "shape"]
    assert set(lines[1]) == {"-", " "}
    assert [line.split()[:3] for line in lines[2:8]] == [
        ["flat", "weight", "kernel"], ["flat", "weight", "bias"], ["head", "weight", "kernel"],
        ["head", "weight", "bias"], ["flat", "activation", "output"], ["head", "activation", "output"]]
    assert lines[-2:] == [f"! {report.findings[0]}", f"note: {report.notes[0]}"]
    assert "symmetric units in 'flat'" in lines[-2]


def test_to_dataframe_needs_pandas(monkeypatch):
    report = diagnose(classifier(), X)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match="needs pandas"):
        report.to_dataframe()


def test_to_dataframe_has_one_row_per_row():
    pandas = pytest.importorskip("pandas")
    report = diagnose(classifier(), X)
    frame = report.to_dataframe()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(report)
    # The printed columns first, then every other field of the rows.
    assert list(frame.columns[: len(report.columns)]) == list(report.columns)
    assert sorted(frame.columns) == sorted(ROW_KEYS)


@pytest.mark.parametrize("x, y, problem", [
    (X[:1], None, r"argument `x`.*batch sizes \[1\]"),
    (X[:8], Y[:5], r"argument `y`.*8 examples.*batch sizes \[5\]"),
])
def test_the_probe_is_checked_as_the_callbacks_is(x, y, problem):
    with pytest.raises(ValueError, match=f"diagnose: {problem}"):
        diagnose(classifier(), x, y)


def test_failing_gradients_are_a_note_and_the_rest_is_reported():
    one_hot = np.eye(3, dtype="float32")[Y[:8]]  # the wrong target format for this loss
    report = diagnose(classifier(), X[:8], one_hot)
    assert {r["kind"] for r in report.rows} == {"weight", "activation"}
    assert len(report.notes) == 1 and report.notes[0].startswith(
        "gradients are not logged: computing them failed (ValueError")


class ReluToSparse(keras.layers.Layer):
    """ReLU whose output is a `tf.SparseTensor` (TensorFlow backend)."""

    def call(self, inputs):
        import tensorflow as tf

        return tf.sparse.from_dense(keras.ops.relu(inputs))


def test_a_sparse_layer_output_is_summarized_as_its_dense_values(tmp_path):
    from callbacks import InitDiagnostics
    from tensorboard_events import read_events

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(ReluToSparse(name="sparse")(inputs)))
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = np.zeros((64, 1), "float32")
    dense = np.maximum(x[:8], 0).astype(np.float64)
    row = next(r for r in diagnose(model, x[:8], y[:8]).rows if r["path"] == "sparse")
    assert row["zero_fraction"] == pytest.approx((dense == 0).mean(), abs=1e-12)
    assert row["std"] == pytest.approx(dense.std(), rel=1e-6)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, (x[:8], y[:8]))])
    events = read_events(tmp_path)
    assert events.scalar("activation_zero_fraction/sparse/output", 1) == pytest.approx((dense == 0).mean())
    assert events.values["activations/sparse/output"][1][:, 2].sum() == dense.size
