"""The callback never ends a training run, and says what went wrong once."""

import logging

import keras
import numpy as np
import pytest

from kinit.callbacks import InitDiagnostics
import kinit.callbacks.writer
from tensorboard_events import read_events

RNG = np.random.default_rng(9)
X = RNG.normal(size=(32, 6)).astype("float32")
Y = RNG.normal(size=(32, 1)).astype("float32")
PROBE = (X[:8], Y[:8])


def regression(learning_rate=0.01):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, "relu", name="hidden"),
                              keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


def warnings_of(caplog, text):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


def test_divergent_training_finishes_and_logs_nan_counts(tmp_path, caplog):
    history = regression(learning_rate=1e6).fit(
        X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[InitDiagnostics(tmp_path, PROBE)])
    assert len(history.history["loss"]) == 3 and np.isnan(history.history["loss"][-1])
    events = read_events(tmp_path)
    nan_counts = events.values["weight_nan/hidden/kernel"]
    assert nan_counts[0] == 0 and nan_counts[3] > 0
    for step in range(4):  # histograms hold exactly the finite values
        for tag, kind in (("weights/hidden/kernel", "weight"), ("activations/out/output", "activation")):
            stat_tag = tag.replace(f"{kind}s/", f"{kind}_nan/")
            non_finite = events.scalar(stat_tag, step) + events.scalar(stat_tag.replace("_nan/", "_inf/"), step)
            size = 48 if kind == "weight" else 8
            assert events.values[tag][step][:, 2].sum() == size - non_finite
    findings = events.values["findings"]
    first_bad = min(step for step, count in nan_counts.items() if count > 0)
    assert sorted(findings) == [0, first_bad]  # written again only when they change
    assert "non-finite values in 'hidden'" in findings[first_bad].item().decode()


def test_unwritable_log_dir_is_reported_at_train_begin_and_training_goes_on(tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        history = dead_regression().fit(X, Y, epochs=2, verbose=0,
                                        callbacks=[InitDiagnostics(blocker / "logs", PROBE)])
    assert len(history.history["loss"]) == 2
    reports = warnings_of(caplog, "cannot write TensorBoard logs")
    assert len(reports) == 1 and str(blocker / "logs") in reports[0]
    # The findings still reach the log.
    assert len(warnings_of(caplog, "InitDiagnostics step 0: dead units in 'hidden'")) == 1


def test_a_failing_write_warns_once_per_kind_and_training_goes_on(tmp_path, caplog, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(kinit.callbacks.writer, "histogram_buckets", broken)
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        history = regression().fit(X, Y, epochs=3, verbose=0, callbacks=[InitDiagnostics(tmp_path, PROBE)])
    assert len(history.history["loss"]) == 3
    failures = warnings_of(caplog, "disk on fire")
    assert sorted(m.split("logging ")[1].split(" histograms")[0] for m in failures) == [
        "activation", "gradient", "weight"]
    events = read_events(tmp_path)
    assert not events.tags("histograms") and sorted(events.values["findings"]) == [0]
    assert sorted(events.values["weight_norm/out/kernel"]) == [0, 1, 2, 3]


def test_freq_and_switches_choose_steps_and_kinds(tmp_path):
    callback = InitDiagnostics(tmp_path, PROBE, freq=2, weights=False, gradients=False,
                               layer_filter="^out$")
    regression().fit(X, Y, epochs=5, verbose=0, callbacks=[callback])
    events = read_events(tmp_path)
    assert events.tags("histograms") == {"activations/out/output"}
    # Every second epoch, and the last one (5), which training ended on.
    assert sorted(events.values["activations/out/output"]) == [0, 2, 4, 5]


@pytest.mark.parametrize("probe, problem", [
    (X[:1], r"batch sizes \[1\]"),
    (np.zeros((5000, 6)), r"batch sizes \[5000\]"),
    ([X[:8], X[:4]], r"batch sizes \[4, 8\]"),
])
def test_probe_must_be_one_bounded_batch(probe, problem):
    with pytest.raises(ValueError, match=f"InitDiagnostics: argument `probe_data`.*{problem}"):
        InitDiagnostics("logs", probe)


@pytest.mark.parametrize("argument, value", [("freq", 0), ("buckets", 0), ("layer_filter", "(")])
def test_bad_arguments_fail_at_construction(argument, value):
    with pytest.raises(ValueError, match=f"InitDiagnostics: argument `{argument}`"):
        InitDiagnostics("logs", PROBE, **{argument: value})


def test_a_callback_reused_on_another_model_starts_over(tmp_path):
    callback = InitDiagnostics(tmp_path, PROBE)
    regression().fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, name="solo")])
    other.compile("sgd", "mse")
    other.fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    events = read_events(tmp_path)
    assert sorted(events.values["weights/solo/kernel"]) == [0, 1]
    assert sorted(events.values["weights/hidden/kernel"]) == [0, 1]


def test_every_log_is_written_beside_keras_tensorboard_with_update_freq(tmp_path):
    # Keras's TensorBoard(update_freq=3) records only when its batch counter is
    # a multiple of 3, for every summary written during training.
    keras_board = keras.callbacks.TensorBoard(tmp_path / "keras", update_freq=3)
    regression().fit(X, Y, batch_size=8, epochs=2, verbose=0,  # epochs end at batches 4 and 8
                     callbacks=[keras_board, InitDiagnostics(tmp_path / "diagnostics", PROBE)])
    events = read_events(tmp_path / "diagnostics")
    assert sorted(events.values["weights/hidden/kernel"]) == [0, 1, 2]


def test_a_summary_tensorflow_declines_to_write_is_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(kinit.callbacks.writer.tf.summary.experimental, "write_raw_pb",
                        lambda *args, **kwargs: False)
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        history = regression().fit(X, Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, PROBE)])
    assert len(history.history["loss"]) == 1
    failures = warnings_of(caplog, "logging the event file failed")
    assert len(failures) == 1 and "declined to write the summaries of step 0" in failures[0]


def test_probe_targets_must_be_as_many_as_the_inputs():
    with pytest.raises(ValueError, match=r"InitDiagnostics: argument `probe_data`.*8 examples.*"
                                         r"batch sizes \[5\]"):
        InitDiagnostics("logs", (X[:8], Y[:5]))


def test_failing_gradients_leave_weights_and_activations_logged(tmp_path, caplog):
    keras.utils.set_random_seed(2)
    labels = np.arange(32) % 3
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, "softmax", name="head")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    one_hot = np.eye(3, dtype="float32")[labels[:8]]  # the wrong target format for this loss
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit(X, labels, epochs=2, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:8], one_hot))])
    histograms = read_events(tmp_path).values
    for tag in ("weights/head/kernel", "activations/head/output"):
        assert sorted(histograms[tag]) == [0, 1, 2]
    assert not any(tag.startswith("gradients/") for tag in histograms)
    failures = warnings_of(caplog, "gradients are not logged")
    assert len(failures) == 1 and "ValueError" in failures[0]


def dead_regression():
    """`regression()` with every hidden ReLU unit dead (bias -20)."""
    model = regression()
    model.get_layer("hidden").bias.assign(np.full(8, -20.0))
    return model


class Revive(keras.callbacks.Callback):
    """Sets the hidden biases to zero after the first epoch."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.get_layer("hidden").bias.assign(np.zeros(8))


def test_findings_that_go_away_are_said_to_be_gone(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        dead_regression().fit(X, Y, epochs=2, verbose=0,
                              callbacks=[Revive(), InitDiagnostics(tmp_path, PROBE)])
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("InitDiagnostics step")]
    assert len(steps) == 2 and "dead units in 'hidden'" in steps[0]
    assert steps[1] == "InitDiagnostics step 1: the earlier problems are gone."
    findings = read_events(tmp_path).values["findings"]
    assert sorted(findings) == [0, 1] and findings[1].item() == b"No problems found at step 1."


def test_a_probe_of_the_wrong_shape_is_one_plain_line_and_the_weights_are_still_logged(tmp_path, caplog):
    model = regression()
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit(X, Y, epochs=2, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:8, :5], Y[:8]))])
    (message,) = warnings_of(caplog, "probe_data")
    assert "\n" not in message and "\x1b" not in message
    assert "(None, 6)" in message and "(8, 5)" in message
    events = read_events(tmp_path)
    assert not events.tags("histograms") - {t for t in events.tags("histograms") if t.startswith("weights/")}
    assert set(events.values["weights/hidden/kernel"]) == {0, 1, 2}


def test_a_dataset_probe_gives_its_first_examples(tmp_path):
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(5)
    callback = InitDiagnostics(tmp_path, dataset.take(2))
    assert callback.x.shape == (10, 6) and callback.y.shape == (10, 1)
    np.testing.assert_array_equal(callback.x, X[:10])
    regression().fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    assert "gradients/hidden/kernel" in read_events(tmp_path).tags("histograms")


def test_a_tuple_is_x_y_as_in_fit_and_the_warning_says_so_for_two_inputs(tmp_path, caplog):
    first, second = keras.Input((6,)), keras.Input((6,))
    model = keras.Model([first, second], keras.layers.Dense(1, name="out")(keras.layers.Add()([first, second])))
    model.compile("sgd", "mse")
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        model.fit([X, X], Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:8], X[:8]))])
    (message,) = warnings_of(caplog, "probe_data")
    assert "read as (x, y)" in message and "list or a dict" in message


def test_sample_weights_of_the_probe_weight_the_gradients(tmp_path):
    def gradient_norm(probe, log_dir):
        model = regression()
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(log_dir, probe, freq=5)])
        return read_events(log_dir).scalar("gradient_norm/hidden/kernel", 0)

    plain = gradient_norm(PROBE, tmp_path / "plain")
    doubled = gradient_norm((X[:8], Y[:8], np.full(8, 2.0, "float32")), tmp_path / "doubled")
    assert doubled == pytest.approx(2 * plain, rel=1e-5)


def test_a_second_fit_continues_the_steps_of_the_run(tmp_path):
    model = regression()
    callback = InitDiagnostics(tmp_path, PROBE)
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[callback])
    model.fit(X, Y, epochs=2, verbose=0, callbacks=[callback])
    model.fit(X, Y, epochs=6, initial_epoch=4, verbose=0, callbacks=[callback])
    assert sorted(read_events(tmp_path).values["weights/hidden/kernel"]) == [0, 1, 2, 3, 4, 5, 6]
