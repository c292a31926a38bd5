"""Fashion-MNIST from local IDX files, with Keras's download as the last resort.

Keras's `fashion_mnist.load_data()` only knows its own cache and the network.
Machines without internet usually have the files somewhere else (Debian's
package `dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist),
so the loader looks, in this order, in:

1. an explicit ``data_dir`` (``--data-dir``): it must hold all four files,
   otherwise the load fails naming what is missing (no silent fallback);
2. Keras's cache, ``$KERAS_HOME/datasets/fashion-mnist`` (default ``~/.keras``);
3. Debian's ``/usr/share/datasets/fashion-mnist``;
4. Keras's download;

and otherwise stops with a message that lists every place it tried and how to
provide the data.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

#: The four files, named as Keras and Debian name them.
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# IDX header: two zero bytes, a type code (0x08 = unsigned byte), the rank.
UBYTE = 0x08


class IdxFormatError(ValueError):
    """A file is not a well-formed gzip-compressed IDX file of the expected rank."""


class DataNotFoundError(FileNotFoundError):
    """The data set is in none of the places searched."""


@dataclasses.dataclass
class FashionMnist:
    """The four arrays (uint8 images, uint8 labels) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def keras_cache_dir() -> Path:
    """Where `keras.datasets.fashion_mnist.load_data()` keeps its files."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "fashion-mnist"


def default_search_dirs() -> list[Path]:
    return [keras_cache_dir(), DEBIAN_DIR]


def read_idx(path: os.PathLike, rank: int) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes with `rank` dimensions."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        # BadGzipFile: a wrong magic number or CRC; EOFError: a stream cut
        # short. Other OSErrors (permissions, a vanished file) say so themselves.
        raise IdxFormatError(f"{path}: not a complete gzip file ({error}).") from None
    header_size = 4 + 4 * rank
    if len(data) < header_size:
        raise IdxFormatError(
            f"{path}: truncated IDX header ({len(data)} bytes, expected at least {header_size})."
        )
    zero, type_code, file_rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code != UBYTE or file_rank != rank:
        raise IdxFormatError(
            f"{path}: wrong IDX magic number 0x{data[:4].hex()}; expected "
            f"0x0000{UBYTE:02x}{rank:02x} (unsigned bytes, {rank} dimension(s))."
        )
    shape = struct.unpack(f">{rank}I", data[4:header_size])
    expected = math.prod(shape)
    received = len(data) - header_size
    if received != expected:
        raise IdxFormatError(
            f"{path}: the header promises shape {shape} ({expected} bytes of data) "
            f"but the file holds {received}; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_dir(directory: os.PathLike) -> FashionMnist:
    """Read the four files of `directory` and check that they fit together."""
    directory = Path(directory)
    arrays = {
        key: read_idx(directory / name, rank=3 if key.startswith("x") else 1)
        for key, name in FILES.items()
    }
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.shape[1:] != IMAGE_SHAPE or len(images) != len(labels):
            raise IdxFormatError(
                f"{directory}: the {split} split has images of shape {images.shape} "
                f"and {len(labels)} labels; expected (n, 28, 28) images and n labels."
            )
    return FashionMnist(**arrays, source=str(directory))


def missing_files(directory: Path) -> list[str]:
    return [name for name in FILES.values() if not (directory / name).is_file()]


def load_fashion_mnist(
    data_dir: Optional[os.PathLike] = None,
    search_dirs: Optional[Iterable[os.PathLike]] = None,
    download: bool = True,
) -> FashionMnist:
    """Load Fashion-MNIST from the first place that has it (see the module doc).

    Args:
        data_dir: a directory that must hold the four files; when given,
            nothing else is tried.
        search_dirs: the local places to try in order; default
            `default_search_dirs()`.
        download: whether to fall back to Keras's download.

    Raises:
        DataNotFoundError: listing every place tried, or saying that an
            explicit `data_dir` does not exist or which files it lacks.
        IdxFormatError: a file found is not a valid IDX file.
        OSError: a file found cannot be read (e.g. `PermissionError`).
    """
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            what = "is not a directory" if data_dir.exists() else "does not exist"
            raise DataNotFoundError(
                f"--data-dir {data_dir} {what}; it must be a directory holding the four "
                f"Fashion-MNIST files {', '.join(FILES.values())}."
            )
        missing = missing_files(data_dir)
        if missing:
            raise DataNotFoundError(
                f"--data-dir {data_dir} lacks {', '.join(missing)}; it must hold the "
                f"four Fashion-MNIST files {', '.join(FILES.values())}."
            )
        return read_dir(data_dir)

    tried = []
    for directory in map(Path, default_search_dirs() if search_dirs is None else search_dirs):
        missing = missing_files(directory)
        if not missing:
            return read_dir(directory)
        what = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)}"
        tried.append(f"{directory} ({what})")

    if download:
        try:
            return keras_download()
        except Exception as error:  # any network or file failure ends in the message below
            tried.append(f"Keras's download ({type(error).__name__}: {error})")
    else:
        tried.append("Keras's download (not attempted)")
    raise DataNotFoundError(not_found_message(tried))


def keras_download() -> FashionMnist:
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return FashionMnist(x_train, y_train, x_test, y_test, source="Keras's download")


def not_found_message(tried: Sequence[str]) -> str:
    places = "\n".join(f"  - {place}" for place in tried)
    return (
        "Fashion-MNIST was not found. Tried, in order:\n"
        f"{places}\n"
        "Provide the four files "
        f"({', '.join(FILES.values())}) in one of these ways:\n"
        "  - pass --data-dir DIR pointing at a directory that holds them;\n"
        "  - on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
        f"(installs them in {DEBIAN_DIR});\n"
        f"  - copy them into {keras_cache_dir()};\n"
        "  - allow network access so that Keras can download them."
    )


def write_idx(path: os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (the reader's inverse)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(f">HBB{array.ndim}I", 0, UBYTE, array.ndim, *array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.tobytes())


def write_synthetic(directory: os.PathLike, n_train: int, n_test: int, seed: int = 0) -> Path:
    """Write a small, learnable stand-in for Fashion-MNIST as the four IDX files.

    Each class is a fixed random 28×28 prototype; an example is its class's
    prototype with a random brightness plus noise, so a sensible network
    separates the classes within a few hundred steps while a network stuck at
    its initial symmetry stays at chance. Classes are balanced (round robin).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(0, 255, size=(NUM_CLASSES, *IMAGE_SHAPE))

    def examples(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (np.arange(n) % NUM_CLASSES).astype(np.uint8)
        rng.shuffle(labels)
        brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1))
        noise = rng.normal(0, 40, size=(n, *IMAGE_SHAPE))
        images = np.clip(prototypes[labels] * brightness + noise, 0, 255).astype(np.uint8)
        return images, labels

    splits = {"train": examples(n_train), "test": examples(n_test)}
    for key, name in FILES.items():
        kind, split = key.split("_")
        write_idx(directory / name, splits[split][0 if kind == "x" else 1])
    return directory
