"""The pure statistics, each against a direct NumPy computation."""

import math

import numpy as np
import pytest

from kinit.callbacks.statistics import (
    activation_summary,
    combined_rms,
    identical_units,
    summarize,
    update_ratio,
)

RNG = np.random.default_rng(7)


def test_summarize_leaves_out_and_counts_non_finite_values():
    values = RNG.normal(size=(40, 5)).astype("float32")
    values[0, 0], values[3, 1], values[7, 2] = np.nan, np.inf, -np.inf
    values[9, :] = 0.0
    finite = values[np.isfinite(values)].astype(np.float64)
    stats = summarize(values)
    assert (stats["count"], stats["nan"], stats["inf"]) == (197, 1, 2)
    assert stats["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(math.sqrt(((finite - finite.mean()) ** 2).mean()), rel=1e-12)
    assert stats["norm"] == pytest.approx(math.sqrt((finite ** 2).sum()), rel=1e-12)
    assert (stats["min"], stats["max"]) == (finite.min(), finite.max())
    assert stats["zero_fraction"] == 5 / 197


def test_summarize_with_nothing_finite_has_no_moments():
    stats = summarize([np.nan, np.inf])
    assert (stats["count"], stats["nan"], stats["inf"]) == (0, 1, 1)
    assert stats["mean"] is None and stats["std"] is None and stats["norm"] is None


def test_signal_is_the_variation_across_examples_not_across_units():
    # Every example identical, units very different: no signal at all.
    same_for_all = np.tile(np.arange(8.0), (16, 1))
    assert activation_summary(same_for_all)["signal"] == 0.0
    values = RNG.normal(size=(64, 3, 4))
    per_feature_var = values.reshape(64, -1).var(axis=0)
    assert activation_summary(values)["signal"] == pytest.approx(math.sqrt(per_feature_var.mean()))


def test_dead_units_are_zero_for_every_example_and_position():
    values = np.abs(RNG.normal(size=(10, 6, 6, 4)))
    values[..., 1] = 0.0                  # dead channel
    values[:9, ..., 2] = 0.0              # alive in one example only
    assert activation_summary(values, "relu")["dead_fraction"] == 0.25


@pytest.mark.parametrize("activation, rule", [
    ("sigmoid", lambda v: (v < 0.01) | (v > 0.99)),
    ("tanh", lambda v: np.abs(v) > 0.99),
])
def test_saturated_fraction_follows_the_stated_rule(activation, rule):
    values = RNG.uniform(-1, 1, size=(50, 20)) if activation == "tanh" else RNG.uniform(0, 1, size=(50, 20))
    values[0, 0] = np.nan
    finite = values[np.isfinite(values)]
    assert activation_summary(values, activation)["saturated_fraction"] == pytest.approx(rule(finite).mean())
    assert activation_summary(values, "relu")["saturated_fraction"] is None


def test_identical_units_along_the_units_axis():
    column = RNG.normal(size=(5, 1))
    assert identical_units(np.tile(column, (1, 4))) is True
    assert identical_units(np.zeros((3, 3, 2, 8))) is True
    assert identical_units(RNG.normal(size=(5, 4))) is False
    transposed = np.tile(RNG.normal(size=(3, 1, 2)), (1, 6, 1))  # units on axis -2
    assert identical_units(transposed, axis=-2) is True
    assert identical_units(transposed, axis=-1) is False
    assert identical_units(np.zeros(4)) is None          # a bias: no units axis
    assert identical_units(np.zeros((5, 1))) is None     # a single unit


def test_update_ratio_is_relative_to_the_current_weights():
    previous, current = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3))
    expected = np.sqrt(((current - previous) ** 2).sum() / (current ** 2).sum())
    assert update_ratio(previous, current) == pytest.approx(expected)
    assert update_ratio(previous, np.zeros((6, 3))) is None
    assert update_ratio(previous, np.full((6, 3), np.nan)) is None


def test_combined_rms_pools_tensors_by_element():
    a, b = RNG.normal(size=10), RNG.normal(size=30)
    expected = np.sqrt(np.concatenate([a, b]) @ np.concatenate([a, b]) / 40)
    assert combined_rms([(np.linalg.norm(a), 10), (np.linalg.norm(b), 30), (None, 5)]) == pytest.approx(expected)


def test_signal_ignores_non_finite_entries_feature_by_feature():
    values = RNG.normal(size=(32, 2, 3))
    values[0, 1, 2], values[5, 0, 0] = np.nan, np.inf
    flat = values.reshape(32, -1)
    per_feature_var = [flat[np.isfinite(flat[:, f]), f].var() for f in range(6)]
    assert activation_summary(values)["signal"] == pytest.approx(math.sqrt(np.mean(per_feature_var)))
