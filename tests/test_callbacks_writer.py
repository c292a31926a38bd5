"""The histogram writer: buckets of finite values, in TensorBoard's own format."""

import numpy as np
import pytest

from kinit.callbacks.writer import CHUNK, SummaryWriter, histogram_buckets, histogram_value, scalar_value, text_value
from tensorboard_events import read_events

RNG = np.random.default_rng(3)


def test_buckets_span_min_max_and_count_the_finite_values_across_chunks():
    values = RNG.standard_cauchy(size=CHUNK + 4097).astype("float32")  # two chunks
    values[[5, CHUNK - 1, CHUNK + 7]] = [np.nan, np.inf, -np.inf]
    finite = values[np.isfinite(values)]
    histogram = histogram_buckets(values, 40).numpy()
    assert histogram.shape == (40, 3)
    assert histogram[0, 0] == finite.min() and histogram[-1, 1] == finite.max()
    np.testing.assert_array_equal(histogram[1:, 0], histogram[:-1, 1])  # contiguous
    assert histogram[:, 2].sum() == finite.size
    reference, edges = np.histogram(finite.astype(np.float64), bins=40,
                                    range=(float(finite.min()), float(finite.max())))
    np.testing.assert_allclose(histogram[:, 0], edges[:-1], rtol=1e-12, atol=1e-9)
    # Values within rounding of an edge may land on either side of it.
    assert np.abs(histogram[:, 2] - reference).sum() <= 4


def test_constant_and_empty_tensors_follow_tensorboards_convention():
    constant = histogram_buckets(np.full((3, 4), 0.5, "float32"), 5).numpy()
    np.testing.assert_array_equal(constant[:, :2], np.full((5, 2), 0.5))
    np.testing.assert_array_equal(constant[:, 2], [0, 0, 0, 0, 12])
    empty = histogram_buckets(np.array([np.nan, -np.inf], "float32"), 3).numpy()
    np.testing.assert_array_equal(empty, np.zeros((3, 3)))


@pytest.mark.parametrize("dtype", ["float16", "float64", "int32"])
def test_other_dtypes_are_binned_too(dtype):
    values = (RNG.normal(size=500) * 100).astype(dtype)
    histogram = histogram_buckets(values, 7).numpy()
    assert histogram[0, 0] == float(values.min()) and histogram[-1, 1] == float(values.max())
    assert histogram[:, 2].sum() == 500


def test_writer_writes_plugin_tensors_tensorboard_reads(tmp_path):
    values = RNG.normal(size=(20, 5)).astype("float32")
    SummaryWriter(tmp_path).write(3, [
        histogram_value("weights/dense/kernel", values, buckets=6),
        scalar_value("weight_norm/dense/kernel", 2.5),
        text_value("findings", "* a problem"),
    ])  # flushed: readable at once
    events = read_events(tmp_path)
    assert events.plugin == {"weights/dense/kernel": "histograms",
                             "weight_norm/dense/kernel": "scalars", "findings": "text"}
    histogram = events.values["weights/dense/kernel"][3]
    assert histogram.shape == (6, 3) and histogram[:, 2].sum() == 100
    assert events.scalar("weight_norm/dense/kernel", 3) == 2.5
    assert events.values["findings"][3].item() == b"* a problem"


def test_unwritable_log_dir_is_an_error_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="a_file/logs"):
        SummaryWriter(blocker / "logs")
