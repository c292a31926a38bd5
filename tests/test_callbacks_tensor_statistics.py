"""The statistics computed where the tensors live equal the NumPy definitions."""

import numpy as np
import pytest

from kinit.callbacks.statistics import activation_summary, summarize
from kinit.callbacks.tensor_statistics import summarize_tensors
import kinit.callbacks.traced as traced
from kinit.callbacks.traced import CHUNK
from kinit.callbacks.writer import histogram_buckets

RNG = np.random.default_rng(5)


def numpy_reference(values, per_example, activation):
    reference = summarize(values)
    return {**reference, **activation_summary(values, activation)} if per_example else reference


def assert_same_numbers(got: dict, want: dict):
    assert got.keys() == want.keys()
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:  # float64 accumulation on both sides, in another order
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def relu_output(shape, dead_units=1):
    values = np.maximum(RNG.normal(size=shape), 0).astype("float32")
    values[..., :dead_units] = 0.0
    return values


CASES = {
    "dense kernel": (RNG.normal(0.3, 2.0, size=(20, 7)).astype("float32"), False, None),
    "integer weight": (RNG.integers(-5, 5, size=(4, 9)), False, None),
    "float16 bias": (RNG.normal(size=33).astype("float16"), False, None),
    "relu conv output": (relu_output((6, 5, 5, 4)), True, "relu"),
    "sigmoid output": (RNG.uniform(0, 1, size=(50, 8)).astype("float32"), True, "sigmoid"),
    "tanh output": (np.tanh(RNG.normal(0, 3, size=(40, 6))).astype("float32"), True, "tanh"),
    "one value per example": (RNG.normal(size=12).astype("float32"), True, None),
    # A unit at or below zero for every example is not dead: dead needs min and max 0.
    "linear output": (np.concatenate([np.minimum(RNG.normal(size=(30, 1)), 0), RNG.normal(size=(30, 3)),
                                      np.zeros((30, 1))], axis=1).astype("float32"), True, None),
    # Larger than a chunk: folded chunk by chunk (whole rows of examples).
    "streamed weight": (RNG.normal(1.0, 0.5, size=CHUNK + 4097).astype("float32"), False, None),
    "streamed output": (relu_output((40, 30000)), True, "relu"),
}


def test_every_statistic_equals_the_numpy_definition():
    got = summarize_tensors(list(CASES.values()))
    for (name, case), summary in zip(CASES.items(), got):
        assert summary is not None, name
        assert_same_numbers(summary, numpy_reference(*case))


def test_tensors_numpy_must_summarize_are_left_to_it():
    with_nan = RNG.normal(size=(8, 3)).astype("float32")
    with_nan[2, 1] = np.nan
    with_inf = RNG.normal(size=(8, 3)).astype("float32")
    with_inf[0, 0] = -np.inf
    healthy = RNG.normal(size=(8, 3)).astype("float32")
    got = summarize_tensors([(with_nan, True, "relu"), (np.zeros((0, 3), "float32"), False, None),
                            (np.array(["a", "b"]), False, None), (with_inf, False, None), (healthy, False, None)])
    assert got[:4] == [None] * 4
    assert_same_numbers(got[4], summarize(healthy))


def test_a_list_of_tensors_is_binned_as_each_alone():
    tensors = [CASES["dense kernel"][0], CASES["integer weight"][0], CASES["streamed weight"][0]]
    together = histogram_buckets(tensors, 9)
    for tensor, histogram in zip(tensors, together):
        np.testing.assert_array_equal(histogram, histogram_buckets(tensor, 9).numpy())


def test_subnormal_values_are_left_to_numpy():
    # TensorFlow's CPU kernels take them for zero; NumPy counts them as they are.
    values = np.array([1e-40, -2e-40, 3e-40, 0.0], "float32")
    assert summarize_tensors([(values, False, None), (values.astype("float64") * 1e-270, False, None)]) == [None, None]
    assert summarize(values)["zero_fraction"] == 0.25
    normal = np.array([1e-37, 0.0], "float32")  # the smallest normal float32 is 1.2e-38
    assert_same_numbers(summarize_tensors([(normal, False, None)])[0], summarize(normal))


def test_sparse_tensors_are_left_to_numpy():
    import tensorflow as tf

    sparse = tf.sparse.from_dense(np.array([[0.0, 2.0], [1.0, 0.0]], "float32"))
    assert summarize_tensors([(sparse, True, None)]) == [None]


def test_binning_between_given_extremes_equals_numpy():
    values = CASES["streamed weight"][0]
    extremes = (float(values.min()), float(values.max()))
    histogram = histogram_buckets(values, 13, extremes).numpy()
    counts, edges = np.histogram(values.astype(np.float64), bins=13, range=extremes)
    np.testing.assert_array_equal(histogram[:, 2], counts)
    np.testing.assert_allclose(histogram[:, 0], edges[:-1], rtol=1e-15)


def test_which_tensors_hold_nan_does_not_change_what_is_traced():
    clean = RNG.normal(size=(6, 4)).astype("float32")
    broken = clean.copy()
    broken[1, 2] = np.nan
    extremes = (float(clean.min()), float(clean.max()))
    histogram_buckets([clean, clean], 5, [extremes, extremes])
    calls = len(traced._CALLS)
    first, second = histogram_buckets([broken, clean], 5, [None, extremes])
    histogram_buckets([clean, broken], 5, [extremes, None])
    assert len(traced._CALLS) == calls
    finite = np.delete(clean.ravel(), 1 * 4 + 2)
    np.testing.assert_array_equal(first[:, 2], np.histogram(finite, bins=5, range=(finite.min(), finite.max()))[0])
    np.testing.assert_array_equal(second, histogram_buckets(clean, 5).numpy())


@pytest.mark.slow
def test_the_traced_calls_kept_are_bounded():
    small = np.ones(3, "float32")
    for count in range(1, traced.CALLS_KEPT + 6):  # a new sequence of functions each time
        histogram_buckets([small] * count, 4)
    assert len(traced._CALLS) == traced.CALLS_KEPT
    histogram_buckets([small] * 2, 4)  # used longest ago: evicted, then traced anew
    assert len(traced._CALLS) == traced.CALLS_KEPT
    assert max(len(key) for key in traced._CALLS) == traced.CALLS_KEPT + 5  # the latest stay


def test_the_bins_are_those_of_tf_histogram_fixed_width():
    import tensorflow as tf

    from kinit.callbacks.writer import _bins

    values = np.concatenate([RNG.normal(size=5000), np.linspace(-1.0, 2.0, 31), [-3.0, 5.0]])  # edges, and beyond
    for low, high, buckets in ((-1.0, 2.0, 30), (-1.0, 2.0, 7), (0.1, 0.1 + 3e-7, 13)):
        want = tf.histogram_fixed_width(values, [low, high], buckets, dtype=tf.int64).numpy()
        got = _bins(tf.constant(values), tf.constant(low, tf.float64), tf.constant(high, tf.float64),
                    tf.constant(buckets)).numpy()
        np.testing.assert_array_equal(got, want)
    from kinit.callbacks.writer import _bins_in_range

    inside = np.concatenate([RNG.normal(size=5000), np.linspace(-1.0, 2.0, 31)])
    for buckets in (30, 7, 1):
        low, high = float(inside.min()), float(inside.max())
        want = tf.histogram_fixed_width(inside, [low, high], buckets, dtype=tf.int64).numpy()
        got = _bins_in_range(tf.constant(inside), tf.constant(low, tf.float64), tf.constant(high, tf.float64),
                             tf.constant(buckets)).numpy()
        np.testing.assert_array_equal(got, want)
