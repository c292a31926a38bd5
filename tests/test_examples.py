"""The examples: the Fashion-MNIST loader, the comparison's quick mode on a
synthetic stand-in, and the signal-propagation numbers.

The example scripts are not part of the installed packages; they are loaded
by path, under the module names they use for each other.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

# Its tests share one expensive session fixture: one worker runs them all, once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("examples")]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load_example(name: str):
    """``examples/<name>.py``, imported from that folder as the examples import each other."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


comparison = load_example("fashion_mnist_comparison")
signal = load_example("signal_propagation")
data_module = load_example("fashion_mnist_data")
scheme_registry = load_example("schemes")


def idx_gz(path: Path, array: np.ndarray, magic: bytes | None = None) -> None:
    """An IDX file written from the format's definition, independently of the loader."""
    magic = bytes([0, 0, 0x08, array.ndim]) if magic is None else magic
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(magic + dims + array.astype(np.uint8).tobytes())


def write_dataset(directory: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28)),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.integers(0, 256, (n_test, 28, 28)),
        "y_test": rng.integers(0, 10, n_test),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        idx_gz(directory / data_module.FILES[key], array)
    return arrays


# --- the loader --------------------------------------------------------------

def test_loader_reads_idx_files_written_by_the_test(tmp_path):
    arrays = write_dataset(tmp_path / "data")
    loaded = data_module.load_fashion_mnist(data_dir=tmp_path / "data")
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, key), expected)
        assert getattr(loaded, key).dtype == np.uint8
    assert loaded.source == str(tmp_path / "data")


def test_loader_searches_places_in_order(tmp_path):
    write_dataset(tmp_path / "second", seed=1)
    write_dataset(tmp_path / "third", seed=2)
    loaded = data_module.load_fashion_mnist(
        search_dirs=[tmp_path / "absent", tmp_path / "second", tmp_path / "third"], download=False
    )
    assert loaded.source == str(tmp_path / "second")


def test_loader_default_order_is_keras_cache_then_debian_then_apt_get_then_download(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(data_module, "DEBIAN_DIR", tmp_path / "debian")
    calls = []

    def apt_install():
        calls.append("apt-get")
        raise data_module.RouteUnavailable("no apt-get on this machine")

    monkeypatch.setattr(data_module, "apt_install", apt_install)
    monkeypatch.setattr(data_module, "keras_download",
                        lambda: calls.append("download") or data_module.FashionMnist(*[None] * 4, "download"))
    assert data_module.load_fashion_mnist().source == "download"
    assert calls == ["apt-get", "download"]
    write_dataset(tmp_path / "debian")
    assert data_module.load_fashion_mnist().source == str(tmp_path / "debian")
    write_dataset(tmp_path / "keras" / "datasets" / "fashion-mnist")
    assert data_module.load_fashion_mnist().source == str(tmp_path / "keras" / "datasets" / "fashion-mnist")
    assert calls == ["apt-get", "download"]


def cut_gzip_stream(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def short_payload(path: Path) -> None:
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    with gzip.open(path, "wb") as stream:
        stream.write(data[:-100])


@pytest.mark.parametrize("damage", [cut_gzip_stream, short_payload])
def test_loader_rejects_a_truncated_file(tmp_path, damage):
    write_dataset(tmp_path)
    damaged = tmp_path / data_module.FILES["x_train"]
    damage(damaged)
    with pytest.raises(data_module.IdxFormatError, match="truncated|not a complete gzip") as error:
        data_module.load_fashion_mnist(data_dir=tmp_path)
    assert str(damaged) in str(error.value)


def test_loader_rejects_a_wrong_magic_number(tmp_path):
    write_dataset(tmp_path)
    images = np.zeros((5, 28, 28))
    idx_gz(tmp_path / data_module.FILES["x_test"], images, magic=bytes([0, 0, 0x08, 1]))
    with pytest.raises(data_module.IdxFormatError, match="wrong IDX magic number 0x00000801"):
        data_module.load_fashion_mnist(data_dir=tmp_path)


def test_loader_rejects_images_and_labels_that_do_not_match(tmp_path):
    write_dataset(tmp_path)
    idx_gz(tmp_path / data_module.FILES["y_test"], np.zeros(3))
    with pytest.raises(data_module.IdxFormatError,
                       match=r"the test split has 20 images \(.*t10k-images.*\) but 3 labels"):
        data_module.load_fashion_mnist(data_dir=tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_loader_rejects_labels_outside_0_to_9(tmp_path, split):
    arrays = write_dataset(tmp_path)
    labels = arrays[f"y_{split}"].copy()
    labels[[3, 7]] = [200, 10]
    labels_file = tmp_path / data_module.FILES[f"y_{split}"]
    idx_gz(labels_file, labels)
    with pytest.raises(data_module.IdxFormatError) as error:
        data_module.load_fashion_mnist(data_dir=tmp_path)
    assert str(error.value).startswith(f"{labels_file}: 2 label(s) outside 0-9, the first 200 at index 3")


def test_keras_download_is_checked_like_the_files(monkeypatch):
    import keras

    images, labels = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 200], np.uint8)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data",
                        lambda: ((images, labels), (images, labels[:3])))
    with pytest.raises(data_module.IdxFormatError, match="Keras's download .*label.*200 at index 3"):
        data_module.keras_download()


def test_a_directory_where_a_file_should_be_is_named_as_such(tmp_path):
    write_dataset(tmp_path / "data")
    labels_file = tmp_path / "data" / data_module.FILES["y_train"]
    labels_file.unlink()
    labels_file.mkdir()
    with pytest.raises(data_module.DataNotFoundError) as error:
        data_module.load_fashion_mnist(data_dir=tmp_path / "data")
    assert "train-labels-idx1-ubyte.gz is a directory, not a file" in str(error.value)
    assert "lacks" not in str(error.value)
    with pytest.raises(data_module.DataNotFoundError) as error:
        data_module.load_fashion_mnist(search_dirs=[tmp_path / "data"], download=False)
    assert f"{tmp_path / 'data'} (train-labels-idx1-ubyte.gz is a directory, not a file)" in str(error.value)


def test_loader_lists_every_place_searched_when_nothing_is_found(tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    idx_gz(partial / data_module.FILES["y_train"], np.zeros(4))
    with pytest.raises(data_module.DataNotFoundError) as error:
        data_module.load_fashion_mnist(search_dirs=[tmp_path / "absent", partial], download=False)
    message = str(error.value)
    assert f"{tmp_path / 'absent'} (does not exist)" in message
    assert f"{partial} (lacks train-images-idx3-ubyte.gz, t10k-images" in message
    assert "Keras's download (not attempted)" in message
    assert "--data-dir" in message and "apt-get install dataset-fashion-mnist" in message


def test_an_explicit_data_dir_without_the_files_is_an_error_not_a_fallback(tmp_path):
    write_dataset(tmp_path / "good")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data_module.DataNotFoundError, match="--data-dir .*empty lacks train-images"):
        data_module.load_fashion_mnist(data_dir=tmp_path / "empty", search_dirs=[tmp_path / "good"])


def test_a_data_dir_that_does_not_exist_is_said_to_be_missing(tmp_path):
    with pytest.raises(data_module.DataNotFoundError, match="--data-dir .*absent does not exist"):
        data_module.load_fashion_mnist(data_dir=tmp_path / "absent")


@pytest.mark.parametrize("error", [PermissionError, FileNotFoundError])
def test_an_unreadable_file_is_not_called_a_broken_gzip_file(tmp_path, monkeypatch, error):
    write_dataset(tmp_path)

    def refuse(path, *args, **kwargs):
        raise error(13, "refused", str(path))

    monkeypatch.setattr(data_module.gzip, "open", refuse)
    with pytest.raises(error, match="refused"):
        data_module.load_fashion_mnist(data_dir=tmp_path)


# --- the scheme registry and flags -------------------------------------------

def test_schemes_kinit_lacks_are_skipped_with_a_notice():
    present = scheme_registry.Scheme("here", "present", scheme_registry.keras_default)
    absent = scheme_registry.Scheme("later", "future", scheme_registry.keras_default,
                                    requires=("NotInKinit",))
    chosen, notices = scheme_registry.select([present, absent])
    assert chosen == [present]
    assert notices == ["skipping 'later' (future): this kinit has no kinit.NotInKinit yet."]
    with pytest.raises(ValueError, match="unknown scheme.*'nope'.*choose from here, later"):
        scheme_registry.select([present, absent], ["nope"])


def test_quick_mode_defaults_yield_to_explicit_flags():
    quick = comparison.parse_args(["--quick", "--epochs", "3"])
    assert (quick.epochs, quick.train_size, quick.test_size) == (3, 3000, 1000)
    sized = comparison.parse_args(["--quick", "--train-size", "500"])
    assert (sized.epochs, sized.train_size, sized.test_size) == (2, 500, 1000)
    full = comparison.parse_args([])
    assert (full.epochs, full.train_size, full.test_size) == (10, None, None)
    # Every scheme of the README's table, in its order, in both modes.
    readme_order = ["zeros", "ones", "uniform", "uniform_fan_in", "normal_fan_in", "keras_default",
                    "he_normal", "orthogonal", "auto", "lsuv"]
    assert full.schemes == quick.schemes == readme_order


def test_orthogonal_gain_is_kinits_gain_of_the_activation():
    import math

    import kinit

    assert scheme_registry.activation_gain("relu6") == math.sqrt(2.0)
    # Keras's "leaky_relu" has slope 0.2 (torch's default is 0.01).
    assert scheme_registry.activation_gain("leaky_relu") == kinit.calculate_gain("leaky_relu", 0.2)
    assert scheme_registry.activation_gain("softmax") == scheme_registry.activation_gain(None) == 1.0


# --- the comparison, end to end on a synthetic stand-in ----------------------

@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    return data_module.write_synthetic(tmp_path_factory.mktemp("fashion"), n_train=500, n_test=200)


@pytest.fixture(scope="session")
def quick_run(synthetic_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("comparison")
    return comparison.main(["--quick", "--quiet", "--data-dir", str(synthetic_dir),
                            "--output-dir", str(output), "--probe-size", "64"])


def expected_schemes() -> list[str]:
    return [s.name for s in scheme_registry.select(scheme_registry.COMPARISON)[0]]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_quick_mode_writes_the_table_and_both_plots(quick_run):
    out = quick_run.output_dir
    rows = read_csv(out / "results.csv")
    assert [row["scheme"] for row in rows] == expected_schemes()
    markdown = (out / "results.md").read_text().splitlines()
    assert len([line for line in markdown if line.startswith("| ")]) == 1 + len(rows)
    assert "first epoch ≥ 85% val acc" in markdown[0]
    for png in ("validation_curves.png", "activation_std_at_init.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_mode_logs_metrics_and_histograms_for_every_scheme(quick_run):
    from tensorboard_events import read_events

    dense_layers = ("dense_1", "dense_2", "output")  # the names build_model gives
    for scheme in expected_schemes():
        run_dir = quick_run.log_dir / scheme
        assert read_events(run_dir / "validation").plugin.get("epoch_accuracy") == "scalars", scheme
        diagnostics = read_events(run_dir / "diagnostics")
        for layer in dense_layers:
            for tag in (f"weights/{layer}/kernel", f"activations/{layer}/output", f"gradients/{layer}/kernel"):
                assert diagnostics.plugin.get(tag) == "histograms", (scheme, tag)
                assert sorted(diagnostics.values[tag]) == [0, 1, 2], (scheme, tag)


def test_zeros_stays_at_chance_while_the_keras_default_learns(quick_run, synthetic_dir):
    rows = {row["scheme"]: row for row in read_csv(quick_run.output_dir / "results.csv")}
    labels = data_module.read_idx(synthetic_dir / data_module.FILES["y_test"], rank=1)
    chance = np.bincount(labels).max() / len(labels)
    # All-zero kernels give zero hidden units and zero kernel gradients: only
    # the output bias learns, so the network predicts one class at best.
    assert float(rows["zeros"]["best_val_accuracy"]) <= chance + 1e-6
    assert float(rows["keras_default"]["val_accuracy"]) >= chance + 0.4


def test_the_same_seed_gives_the_same_table(synthetic_dir, tmp_path, fresh_python):
    # kinit's own schemes, one of them data-dependent (LSUV): once here, then
    # in a fresh process, and there again with another seed.
    def flags(seed: int, name: str, schemes=("he_normal", "lsuv")) -> list[str]:
        return ["--quiet", "--epochs", "1", "--data-dir", str(synthetic_dir), "--schemes", *schemes,
                "--seed", str(seed), "--train-size", "256", "--test-size", "100", "--probe-size", "32",
                "--output-dir", str(tmp_path / name)]

    def table(name: str) -> list[dict]:
        return read_csv(tmp_path / name / "results.csv")

    comparison.main(flags(7, "here"))
    process = fresh_python(f"""
        import sys
        sys.path.insert(0, {str(EXAMPLES)!r})
        import fashion_mnist_comparison
        fashion_mnist_comparison.main({flags(7, "fresh")!r})
        fashion_mnist_comparison.main({flags(8, "other", schemes=("he_normal",))!r})
    """)
    assert process.returncode == 0, process.stderr[-2000:]
    here, fresh, other = table("here"), table("fresh"), table("other")
    assert [row["scheme"] for row in fresh] == [row["scheme"] for row in here] == ["he_normal", "lsuv"]
    for row, again in zip(here, fresh):
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert float(again[key]) == pytest.approx(float(row[key]), rel=1e-5, abs=1e-6), (row["scheme"], key)
    assert float(other[0]["train_loss"]) != pytest.approx(float(here[0]["train_loss"]), rel=1e-3)


# --- signal propagation ------------------------------------------------------

def signal_scheme(name: str):
    return next(s for s in scheme_registry.SIGNAL if s.name == name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_with_he_keeps_the_activation_std_within_a_factor_two(seed):
    profile = signal.measure(signal_scheme("he"), "relu", depth=20, width=256, batch=256, seed=seed)
    ratio = profile.activation_std[-1] / profile.activation_std[0]
    assert 0.5 <= ratio <= 2.0


def test_relu_with_random_normal_001_collapses():
    profile = signal.measure(signal_scheme("random_normal"), "relu", depth=20, width=256, batch=256)
    # Each layer scales the std by about 0.01·√(256/2) ≈ 0.11.
    assert profile.activation_std[-1] / profile.activation_std[0] < 1e-12
    assert profile.gradient_std[0] / profile.gradient_std[-1] < 1e-12


def test_signal_propagation_script_prints_every_layer_and_saves_the_plot(tmp_path, capsys):
    png = tmp_path / "signal.png"
    profiles = signal.main(["--depth", "4", "--width", "32", "--batch", "64",
                            "--schemes", "he", "random_normal", "--output", str(png)])
    printed = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    he_relu = next(p for p in profiles if p.scheme.name == "he" and p.activation == "relu")
    assert f"| 4 | {he_relu.activation_std[3]:.3g} |" in printed
    assert len(profiles) == 4 and printed.count("| 4 |") == 4

