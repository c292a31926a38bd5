"""The probe compiled once per model, and the fallbacks when a fast path fails."""

import logging

import keras
import numpy as np
import pytest

import kinit.callbacks.rows
from kinit.model_map import map_model
from kinit.callbacks import InitDiagnostics, diagnose
from kinit.callbacks.compiled import CompiledPass
from kinit.callbacks.layers import discover
from kinit.callbacks.observe import forward_and_backward
from tensorboard_events import read_events

RNG = np.random.default_rng(4)
X = RNG.normal(size=(32, 5)).astype("float32")
Y = (X[:, :1] * 2 - X[:, 1:2]).astype("float32")


class CountingDense(keras.layers.Dense):
    """A Dense layer that counts how often Python runs its call."""

    calls = 0

    def call(self, inputs):
        CountingDense.calls += 1
        return super().call(inputs)


class NumpyDoubling(keras.Model):
    """Doubles its input through NumPy, then two layers: runs eagerly only."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(4, "tanh", name="hidden")
        self.out = keras.layers.Dense(1, name="out")

    def call(self, inputs):
        doubled = keras.ops.convert_to_tensor(keras.ops.convert_to_numpy(inputs) * 2.0)
        return self.out(self.hidden(doubled))


def regression(*layers, run_eagerly=False):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), *layers, keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(0.05), "mse", run_eagerly=run_eagerly)
    return model


def test_the_pass_is_traced_once_reused_and_traced_again_when_trainable_weights_change():
    model = regression(CountingDense(4, activation="relu", name="hidden"))
    entries = discover(map_model(model))
    compiled = CompiledPass()
    CountingDense.calls = 0
    results = [compiled(model, entries, X[:8], Y[:8], True, None) for _ in range(4)]
    assert CountingDense.calls == 2  # eagerly at first, then once while tracing
    reference = forward_and_backward(model, entries, X[:8], Y[:8], True, None)
    for outputs, trainable, grads, failure in results:
        assert failure is None and [v.path for _, _, v in trainable] == [v.path for _, _, v in reference[1]]
        assert [path for path, _ in outputs] == [path for path, _ in reference[0]]
        for (_, tensors), (_, expected) in zip(outputs, reference[0]):
            np.testing.assert_allclose(tensors[0], expected[0], rtol=1e-6)
        for gradient, expected in zip(grads, reference[2]):
            np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)

    model.get_layer("hidden").trainable = False
    CountingDense.calls = 0
    frozen = [compiled(model, entries, X[:8], Y[:8], True, None) for _ in range(3)]
    assert CountingDense.calls == 2  # eagerly once more, then traced again
    assert all([(e.path, name) for e, name, _ in trainable] == [("out", "kernel"), ("out", "bias")]
               for _, trainable, _, _ in frozen)


def test_a_model_that_cannot_be_traced_is_observed_eagerly_at_every_log(tmp_path):
    keras.utils.set_random_seed(3)
    model = NumpyDoubling()
    model.compile(keras.optimizers.SGD(0.05), "mse", run_eagerly=True)  # Keras trains it eagerly too
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:8], Y[:8]))])
    events = read_events(tmp_path)
    for tag in ("activations/hidden/output", "gradients/hidden/kernel"):
        assert sorted(events.values[tag]) == [0, 1, 2, 3]
    kernel, bias = (w.astype(np.float64) for w in model.hidden.get_weights())
    hidden = np.tanh(2 * X[:8].astype(np.float64) @ kernel + bias)
    assert events.scalar("activation_std/hidden/output", 3) == pytest.approx(hidden.std(), rel=1e-5)
    gradients = {(r["path"], r["name"]): r["norm"] for r in diagnose(model, X[:8], Y[:8]).rows
                 if r["kind"] == "gradient"}
    assert events.scalar("gradient_norm/hidden/kernel", 3) == pytest.approx(gradients["hidden", "kernel"], rel=1e-5)


def test_statistics_that_fail_where_the_tensors_live_come_from_numpy_with_one_warning(tmp_path, caplog,
                                                                                      monkeypatch):
    initial = regression(keras.layers.Dense(4, "relu", name="hidden")).get_weights()

    def run(log_dir):
        model = regression(keras.layers.Dense(4, "relu", name="hidden"))
        model.set_weights(initial)
        model.fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False,  # the same training twice
                  callbacks=[InitDiagnostics(log_dir, (X[:8], Y[:8]))])
        return read_events(log_dir)

    expected = run(tmp_path / "fast")

    def broken(items):
        raise RuntimeError("device lost")

    monkeypatch.setattr(kinit.callbacks.rows, "summarize_tensors", broken)
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        events = run(tmp_path / "numpy")
    warnings = [r.getMessage() for r in caplog.records if "device lost" in r.getMessage()]
    assert len(warnings) == 1 and "NumPy computes them instead" in warnings[0]
    scalars = expected.tags("scalars")
    assert scalars == events.tags("scalars")
    for tag in scalars:
        for step, value in expected.values[tag].items():
            assert float(events.values[tag][step]) == pytest.approx(float(value), rel=1e-6, abs=1e-9), (tag, step)


def logged_and_true_gradient_norms(model, events, step, layer):
    """The logged gradient norm of `layer`'s kernel at `step`, and the eager one now."""
    truth = {(r["path"], r["name"]): r["norm"] for r in diagnose(model, X[:8], Y[:8]).rows if r["kind"] == "gradient"}
    return events.scalar(f"gradient_norm/{layer}/kernel", step), truth[layer, "kernel"]


def test_compiling_again_with_another_loss_is_seen_by_the_next_fit(tmp_path):
    model = regression(keras.layers.Dense(4, "relu", name="hidden"))
    callback = InitDiagnostics(tmp_path, (X[:8], Y[:8]))
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    model.compile(keras.optimizers.SGD(0.0), "mae")  # no update: the weights stay what they are now
    model.fit(X, Y, batch_size=8, initial_epoch=2, epochs=5, verbose=0, callbacks=[callback])
    logged, true = logged_and_true_gradient_norms(model, read_events(tmp_path), 5, "out")
    mse = diagnose(model, X[:8], Y[:8], loss="mse").rows
    stale = next(r["norm"] for r in mse if (r["kind"], r["path"], r["name"]) == ("gradient", "out", "kernel"))
    assert abs(stale - true) > 0.1 * true  # the two losses' gradients differ, so the check can fail
    assert logged == pytest.approx(true, rel=1e-5)


def test_layers_added_between_fits_are_observed_by_the_next_fit(tmp_path):
    model = regression(keras.layers.Dense(4, "relu", name="hidden"))
    callback = InitDiagnostics(tmp_path, (X[:8], Y[:8]))
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    model.pop()
    model.add(keras.layers.Dense(3, "tanh", name="added"))
    model.add(keras.layers.Dense(1, name="head"))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(X, Y, batch_size=8, initial_epoch=2, epochs=5, verbose=0, callbacks=[callback])
    events = read_events(tmp_path)
    assert sorted(events.values["gradients/added/kernel"]) == [3, 4, 5]
    logged, true = logged_and_true_gradient_norms(model, events, 5, "hidden")
    assert logged == pytest.approx(true, rel=1e-5)


class UnusedBranch(keras.Model):
    """A layer that runs but does not reach the loss: its weights get no gradient."""

    def __init__(self):
        super().__init__()
        self.first = keras.layers.Dense(3, name="first")
        self.unused = keras.layers.Dense(3, name="unused")
        self.last = keras.layers.Dense(1, name="last")

    def call(self, inputs):
        self.unused(inputs)
        return self.last(self.first(inputs))


def test_weights_without_a_gradient_leave_the_others_in_place():
    keras.utils.set_random_seed(3)
    model = UnusedBranch()
    model(X[:8])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    entries = discover(map_model(model))
    compiled = CompiledPass()
    outputs, trainable, grads, failure = [compiled(model, entries, X[:8], Y[:8], True, None) for _ in range(3)][-1]
    _, expected_trainable, expected, _ = forward_and_backward(model, entries, X[:8], Y[:8], True, None)
    assert failure is None and [v.path for _, _, v in trainable] == [v.path for _, _, v in expected_trainable]
    missing = [(e.path, name) for (e, name, _), g in zip(trainable, grads) if g is None]
    assert sorted(missing) == [("unused", "bias"), ("unused", "kernel")]
    for gradient, want in zip(grads, expected):
        if want is None:
            assert gradient is None
        else:
            np.testing.assert_allclose(gradient, want, rtol=1e-5, atol=1e-7)
