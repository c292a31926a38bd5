"""Spectral health of kernels: the numbers on matrices of known spectrum, and
what the callback writes and `diagnose` shows when `spectra=True`."""

import logging
import math

import keras
import numpy as np
import pytest

import kinit.callbacks.rows
import kinit.callbacks.spectra
from kinit.callbacks import InitDiagnostics, diagnose
from kinit.callbacks.spectra import (MIN_EIGENVALUES, MIN_TAIL, eigenvalues, kernel_matrix, power_law_fit,
                                     spectral_statistics)
from tensorboard_events import read_events

SPECTRA_TAGS = ("weight_spectral_norm", "weight_stable_rank", "weight_alpha")


def orthogonal(n, rng):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def householder(n, rng):
    """A dense orthogonal n × n matrix, I − 2vvᵀ, cheap to make for large n."""
    v = rng.normal(size=(n, 1))
    v /= np.linalg.norm(v)
    return np.eye(n) - 2.0 * v @ v.T


def pareto(n, alpha, rng):
    """n draws of density ∝ λ^(−alpha) on λ ≥ 1 (inverse-CDF sampling)."""
    return (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


# --- known spectra ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(256, 256), (784, 256), (128, 256), (3, 3, 64, 64)])
def test_an_orthogonal_kernel_has_stable_rank_equal_to_its_rank_and_no_tail(shape):
    # Keras's Orthogonal in float32, as a layer holds it: orthonormal rows or columns of the 2-D reshape.
    kernel = keras.initializers.Orthogonal(seed=3)(shape).numpy()
    rank = min(math.prod(shape[:-1]), shape[-1])
    stats = spectral_statistics(kernel)
    assert stats["spectral_norm"] == pytest.approx(1.0, rel=1e-5)  # float32 rounding of the entries
    assert stats["stable_rank"] == pytest.approx(rank, rel=1e-5)
    assert stats["alpha"] is None  # every eigenvalue is 1: no tail to fit, not a huge α


def test_a_rank_one_spike_gives_its_spectral_norm_and_stable_rank_one():
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(300, 1)), rng.normal(size=(1, 120))
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    stats = spectral_statistics(7.5 * u @ v)
    assert stats["spectral_norm"] == pytest.approx(7.5, rel=1e-12)
    assert stats["stable_rank"] == pytest.approx(1.0, rel=1e-12)
    assert stats["alpha"] is None  # one non-zero eigenvalue; the others are rounding, left out


def test_a_spike_planted_on_an_orthogonal_bulk_is_exact():
    rng = np.random.default_rng(1)
    theta, n = 6.0, 200
    singular = np.ones(n)
    singular[17] = theta
    kernel = orthogonal(n, rng) @ np.diag(singular) @ orthogonal(n, rng)
    stats = spectral_statistics(kernel)
    assert stats["spectral_norm"] == pytest.approx(theta, rel=1e-12)
    assert stats["stable_rank"] == pytest.approx((theta ** 2 + n - 1) / theta ** 2, rel=1e-12)


def test_a_random_gaussian_matrix_has_no_heavy_tail():
    # The Marchenko–Pastur bulk ends at a hard edge. At 1000 × 1000 the fit gave α between
    # 6.8 and 49 over seeds 0–29 (float32); small matrices can give less (a 128 × 10
    # kernel's ten eigenvalues fit α from 3.0 to 10), hence this size.
    kernel = np.random.default_rng(5).normal(size=(1000, 1000)).astype("float32")
    assert spectral_statistics(kernel)["alpha"] > 4


def test_eigenvalues_drawn_from_a_pareto_law_give_back_its_exponent():
    # 2000 eigenvalues planted in a dense 2000 × 2000 matrix (W = diag(√λ)·H, H orthogonal,
    # so WᵀW = Hᵀ diag(λ) H). The MLE's standard error is (α − 1)/√n: 0.045 on the whole
    # tail, 0.11 on the shortest tail the KS choice of x_min left over seeds 0–199 (324 of
    # 2000), so 10 % of α = 3 is at least 2.7 standard errors; the largest error over those
    # seeds was 7.8 %.
    rng = np.random.default_rng(2)
    values = pareto(2000, 3.0, rng)
    stats = spectral_statistics(np.sqrt(values)[:, None] * householder(2000, rng))
    assert stats["alpha"] == pytest.approx(3.0, rel=0.10)
    assert stats["spectral_norm"] == pytest.approx(math.sqrt(values.max()), rel=1e-9)
    assert stats["stable_rank"] == pytest.approx(values.sum() / values.max(), rel=1e-9)


@pytest.mark.parametrize("alpha", [2.0, 2.5, 4.0])
def test_the_fit_recovers_pareto_exponents_from_a_few_thousand_eigenvalues(alpha):
    # 3000 draws: over seeds 0–199 the largest error was 5.7 % (α = 2) to 8.5 % (α = 4),
    # the shortest tail 447.
    fit = power_law_fit(pareto(3000, alpha, np.random.default_rng(int(alpha * 10))))
    assert fit.alpha == pytest.approx(alpha, rel=0.10)
    assert fit.tail >= 300  # not a handful of points that happen to fit


def test_the_fit_is_the_mle_at_the_x_min_of_smallest_ks_distance(monkeypatch):
    # Against a plain loop over every candidate x_min; a small block exercises the blocked scan.
    monkeypatch.setattr(kinit.callbacks.spectra, "_BLOCK", 1000)
    rng = np.random.default_rng(8)
    values = np.concatenate([rng.uniform(1, 2, 150), pareto(150, 2.5, rng) * 2, [3.0, 3.0, 3.0]])
    x = np.sort(values)
    best = None
    for x_min in np.unique(x):
        tail = x[x >= x_min]
        if tail.size < MIN_TAIL or math.log(tail[-1] / x_min) <= kinit.callbacks.spectra.MIN_SPREAD:
            continue
        alpha = 1 + tail.size / np.sum(np.log(tail / x_min))
        below = np.searchsorted(tail, tail, side="left") / tail.size  # fraction strictly below
        distance = np.max(np.abs(1 - (tail / x_min) ** (1 - alpha) - below))
        if best is None or distance < best[3]:
            best = (alpha, x_min, tail.size, distance)
    fit = power_law_fit(values)
    assert fit.x_min == best[1] and fit.tail == best[2]
    assert fit.alpha == pytest.approx(best[0], rel=1e-12)
    assert fit.distance == pytest.approx(best[3], rel=1e-9)


def test_too_few_eigenvalues_give_no_alpha():
    rng = np.random.default_rng(3)
    assert power_law_fit(pareto(MIN_EIGENVALUES - 1, 2.5, rng)) is None
    assert power_law_fit(pareto(MIN_EIGENVALUES, 2.5, rng)) is not None
    stats = spectral_statistics(rng.normal(size=(128, MIN_EIGENVALUES - 1)))
    assert stats["alpha"] is None and stats["spectral_norm"] > 0 and stats["stable_rank"] >= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_kernels_give_none(bad):
    kernel = np.random.default_rng(4).normal(size=(40, 20))
    kernel[3, 5] = bad
    assert spectral_statistics(kernel) == dict.fromkeys(("spectral_norm", "stable_rank", "alpha"))


def test_a_zero_kernel_has_spectral_norm_zero_and_nothing_else():
    assert spectral_statistics(np.zeros((30, 20))) == {"spectral_norm": 0.0, "stable_rank": None, "alpha": None}


def test_kernels_are_read_as_inputs_of_a_unit_by_units():
    kernel = np.arange(3 * 3 * 4 * 5, dtype="float32").reshape(3, 3, 4, 5)
    np.testing.assert_array_equal(kernel_matrix(kernel), kernel.reshape(36, 5))
    transposed = np.moveaxis(kernel, -1, -2)  # a transposed convolution's (*spatial, out, in)
    np.testing.assert_array_equal(kernel_matrix(transposed, units_axis=-2), kernel.reshape(36, 5))
    # WᵀW and WWᵀ share their non-zero eigenvalues: only min(N, M) of them are returned.
    assert eigenvalues(kernel.reshape(36, 5)).shape == eigenvalues(kernel.reshape(36, 5).T).shape == (5,)


def test_tensorflow_gives_the_eigenvalues_numpy_gives():
    from kinit.callbacks.tensor_spectra import eigenvalues as tensor_eigenvalues

    rng = np.random.default_rng(9)
    for shape in [(300, 40), (40, 300), (64, 64)]:
        matrix = rng.normal(size=shape)
        expected = eigenvalues(matrix)
        np.testing.assert_allclose(tensor_eigenvalues(matrix), expected, rtol=0, atol=1e-12 * expected[-1])
    kernel = rng.normal(size=(200, 100)) @ np.diag(np.linspace(0.1, 3, 100))
    assert spectral_statistics(kernel, solver=tensor_eigenvalues) == pytest.approx(spectral_statistics(kernel),
                                                                                   rel=1e-9)


# --- the callback and diagnose ----------------------------------------------------------------------------------

RNG = np.random.default_rng(6)
X = RNG.normal(size=(64, 24)).astype("float32")
Y = RNG.normal(size=(64, 1)).astype("float32")


def regression(learning_rate=0.01):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((24,)), keras.layers.Dense(16, "relu", name="hidden"),
                              keras.layers.Dense(12, "tanh", name="middle"), keras.layers.Dense(1, name="out")])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


class KernelRecorder(keras.callbacks.Callback):
    """Each layer's kernel at every step the diagnostics log."""

    def __init__(self):
        super().__init__()
        self.steps = {}

    def record(self, step):
        self.steps[step] = {layer.name: layer.kernel.numpy().copy() for layer in self.model.layers}

    def on_train_begin(self, logs=None):
        self.record(0)

    def on_epoch_end(self, epoch, logs=None):
        self.record(epoch + 1)


def test_the_callback_writes_the_three_scalars_of_every_kernel(tmp_path):
    recorder = KernelRecorder()
    regression().fit(X, Y, batch_size=16, epochs=2, verbose=0,
                     callbacks=[recorder, InitDiagnostics(tmp_path, (X[:16], Y[:16]), spectra=True)])
    events = read_events(tmp_path)
    written = {tag for tag in events.values if tag.startswith(SPECTRA_TAGS)}
    # out's kernel (12 × 1) has one eigenvalue: too few for α, which is then not written.
    assert written == {f"{stat}/{layer}/kernel" for stat in SPECTRA_TAGS for layer in ("hidden", "middle")} | {
        "weight_spectral_norm/out/kernel", "weight_stable_rank/out/kernel"}
    assert events.tags("scalars") >= written
    for step, kernels in recorder.steps.items():
        for layer, kernel in kernels.items():
            expected = spectral_statistics(kernel)
            for key in ("spectral_norm", "stable_rank", "alpha"):
                tag = f"weight_{key}/{layer}/kernel"
                if expected[key] is not None:
                    assert events.scalar(tag, step) == pytest.approx(expected[key], rel=1e-6)
    assert events.scalar("weight_stable_rank/out/kernel", 0) == pytest.approx(1.0, rel=1e-6)


def test_spectra_are_off_by_default(tmp_path):
    regression().fit(X, Y, epochs=1, verbose=0, callbacks=[InitDiagnostics(tmp_path, (X[:16], Y[:16]))])
    events = read_events(tmp_path)
    assert "weight_norm/hidden/kernel" in events.values
    assert not [tag for tag in events.values if tag.startswith(SPECTRA_TAGS)]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_flag_is_checked(value):
    with pytest.raises(ValueError, match="InitDiagnostics: argument `spectra` must be True or False"):
        InitDiagnostics("logs", (X[:16], Y[:16]), spectra=value)
    with pytest.raises(ValueError, match="diagnose: argument `spectra` must be True or False"):
        diagnose(regression(), X[:16], spectra=value)


def test_diverging_kernels_give_no_spectra_and_training_goes_on(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        history = regression(learning_rate=1e6).fit(
            X, Y, batch_size=16, epochs=3, verbose=0,
            callbacks=[InitDiagnostics(tmp_path, (X[:16], Y[:16]), spectra=True)])
    assert len(history.history["loss"]) == 3
    events = read_events(tmp_path)
    nan_steps = {step for step, count in events.values["weight_nan/hidden/kernel"].items() if count > 0}
    assert nan_steps and 0 not in nan_steps
    assert set(events.values["weight_spectral_norm/hidden/kernel"]) == {0, 1, 2, 3} - nan_steps
    assert not [r for r in caplog.records if "spectra" in r.getMessage()]  # None, not a failure


def test_a_failing_spectrum_warns_once_and_keeps_the_rest_of_the_row(tmp_path, caplog, monkeypatch):
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(kinit.callbacks.rows, "spectral_statistics", broken)
    with caplog.at_level(logging.WARNING, logger="kinit.callbacks"):
        history = regression().fit(X, Y, epochs=2, verbose=0,
                                   callbacks=[InitDiagnostics(tmp_path, (X[:16], Y[:16]), spectra=True)])
    assert len(history.history["loss"]) == 2
    failures = [r.getMessage() for r in caplog.records if "did not converge" in r.getMessage()]
    assert len(failures) == 1 and "logging weight spectra failed" in failures[0]
    events = read_events(tmp_path)
    assert sorted(events.values["weight_norm/hidden/kernel"]) == [0, 1, 2]
    assert "weights/hidden/kernel" in events.tags("histograms")
    assert not [tag for tag in events.values if tag.startswith(SPECTRA_TAGS)]


def test_diagnose_gives_the_numbers_of_kernels_only_and_shows_them():
    model = regression()
    report = diagnose(model, X[:16], spectra=True)
    for row in report.rows:
        numbers = {key: row[key] for key in ("spectral_norm", "stable_rank", "alpha")}
        if row["kind"] == "weight" and row["name"] == "kernel":
            expected = spectral_statistics(model.get_layer(row["path"]).kernel.numpy())
            assert {key for key, value in numbers.items() if value is None} == {
                key for key, value in expected.items() if value is None}
            assert {key: value for key, value in numbers.items() if value is not None} == pytest.approx(
                {key: value for key, value in expected.items() if value is not None}, rel=1e-9)
            assert row["spectral_norm"] > 0
        else:
            assert set(numbers.values()) == {None}
    lines = str(report).splitlines()
    assert lines[0].split()[-3:] == ["sigma_max", "stable_rank", "alpha"]
    hidden_kernel = next(line.split() for line in lines[2:] if line.split()[:3] == ["hidden", "weight", "kernel"])
    row = next(r for r in report.rows if (r["path"], r["name"], r["kind"]) == ("hidden", "kernel", "weight"))
    assert hidden_kernel[-3:] == [format(row[key], ".3g") for key in ("spectral_norm", "stable_rank", "alpha")]
    plain = diagnose(model, X[:16])
    assert "sigma_max" not in str(plain)
    assert all(r["spectral_norm"] is None for r in plain.rows)
