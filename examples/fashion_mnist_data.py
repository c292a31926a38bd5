"""Fashion-MNIST from local IDX files, or obtained where the machine allows.

Keras's `fashion_mnist.load_data()` only knows its own cache and the network.
Machines without internet usually reach a package mirror (Debian's package
`dataset-fashion-mnist` puts the files in /usr/share/datasets/fashion-mnist),
so the loader looks, in this order, in:

1. an explicit ``data_dir`` (``--data-dir``): it must hold all four files,
   otherwise the load fails naming what is missing (no silent fallback);
2. Keras's cache, ``$KERAS_HOME/datasets/fashion-mnist`` (default ``~/.keras``);
3. Debian's ``/usr/share/datasets/fashion-mnist``;

and then obtains the data (unless ``download=False``, ``--no-download``):

4. Debian's package through ``apt-get`` (one ``apt-get update``, then
   ``apt-get install``), when it runs as root or passwordless ``sudo -n``
   works, each step printed and bounded in time;
5. Keras's download;

and otherwise stops with a message that lists every place and route it tried
and how to provide the data. Labels must be 0-9 and each split must have as
many labels as images.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import shutil
import struct
import subprocess
import time
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
DEBIAN_PACKAGE = "dataset-fashion-mnist"
#: Seconds one apt-get step (update, install) may take before it is stopped,
#: and of those how long it may wait for a package manager already running
#: (e.g. a fresh machine's automatic updates) instead of failing on its lock.
APT_TIMEOUT_S = 600
APT_LOCK_WAIT_S = 300
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
#: Examples in the real data set's splits.
TRAIN_EXAMPLES, TEST_EXAMPLES = 60000, 10000
# IDX header: two zero bytes, a type code (0x08 = unsigned byte), the rank.
UBYTE = 0x08


class IdxFormatError(ValueError):
    """A file is not a well-formed gzip-compressed IDX file of the expected rank."""


class DataNotFoundError(FileNotFoundError):
    """The data set is in none of the places searched."""


class RouteUnavailable(RuntimeError):
    """A way of obtaining the data does not apply here or failed; the message says why."""


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
    return checked(arrays, {key: str(directory / name) for key, name in FILES.items()},
                   source=str(directory))


def checked(arrays: dict[str, np.ndarray], origins: dict[str, str], source: str) -> FashionMnist:
    """The arrays as a `FashionMnist`, once each split's images are (n, 28, 28),
    its labels as many and all 0-9; `origins` names where each array came from."""
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        where_x, where_y = origins[f"x_{split}"], origins[f"y_{split}"]
        if images.shape[1:] != IMAGE_SHAPE:
            raise IdxFormatError(f"{where_x}: images of shape {images.shape}; expected (n, 28, 28).")
        if len(images) != len(labels):
            raise IdxFormatError(
                f"the {split} split has {len(images)} images ({where_x}) but {len(labels)} "
                f"labels ({where_y}); it needs one label per image."
            )
        outside = np.flatnonzero(labels >= NUM_CLASSES)
        if len(outside):
            raise IdxFormatError(
                f"{where_y}: {len(outside)} label(s) outside 0-{NUM_CLASSES - 1}, the first "
                f"{labels[outside[0]]} at index {outside[0]}; Fashion-MNIST's {NUM_CLASSES} "
                f"classes are labeled 0 to {NUM_CLASSES - 1}."
            )
    return FashionMnist(**arrays, source=source)


def directory_problem(directory: Path) -> Optional[str]:
    """Why `directory` cannot be read as the data set, or None when it holds the four files."""
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "is not a directory"
    missing = [name for name in FILES.values() if not (directory / name).exists()]
    problems = [f"lacks {', '.join(missing)}"] if missing else []
    for name in FILES.values():
        path = directory / name
        if path.exists() and not path.is_file():
            problems.append(f"{name} is a directory, not a file" if path.is_dir()
                            else f"{name} is not a regular file")
    return "; ".join(problems) or None


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
        download: whether to obtain the data when no local place has it:
            Debian's package through apt-get, then Keras's download.

    Raises:
        DataNotFoundError: listing every place and route tried, or saying
            that an explicit `data_dir` does not exist or which files it lacks.
        IdxFormatError: a file found is not a valid IDX file, or its arrays
            do not fit together (shapes, counts, labels outside 0-9).
        OSError: a file found cannot be read (e.g. `PermissionError`).
    """
    if data_dir is not None:
        data_dir = Path(data_dir)
        problem = directory_problem(data_dir)
        if problem:
            raise DataNotFoundError(
                f"--data-dir {data_dir} {problem}; it must be a directory holding the four "
                f"Fashion-MNIST files {', '.join(FILES.values())}."
            )
        return read_dir(data_dir)

    tried = []
    for directory in map(Path, default_search_dirs() if search_dirs is None else search_dirs):
        problem = directory_problem(directory)
        if not problem:
            return read_dir(directory)
        tried.append(f"{directory} ({problem})")

    # Looked up at call time, so that each route can be replaced on its own.
    routes = {f"Debian's package {DEBIAN_PACKAGE} through apt-get": apt_install,
              "Keras's download": keras_download}
    for name, route in routes.items():
        if not download:
            tried.append(f"{name} (not attempted)")
            continue
        try:
            return route()
        except RouteUnavailable as error:
            tried.append(f"{name} ({error})")
        except Exception as error:  # any network or file failure ends in the message below
            tried.append(f"{name} ({type(error).__name__}: {error})")
    raise DataNotFoundError(not_found_message(tried))


def apt_prefix() -> list[str]:
    """What runs apt-get as root here: nothing as root, ``sudo -n`` where it
    needs no password. Raises `RouteUnavailable` saying why neither works."""
    if shutil.which("apt-get") is None:
        raise RouteUnavailable("no apt-get on this machine")
    if getattr(os, "geteuid", lambda: -1)() == 0:
        return []
    if shutil.which("sudo") is None:
        raise RouteUnavailable("not root, and no sudo")
    check = subprocess.run(["sudo", "-n", "true"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        raise RouteUnavailable(f"not root, and sudo -n refused: {last_line(check.stderr)}")
    return ["sudo", "-n"]


def apt_install() -> FashionMnist:
    """Install Debian's package (after one ``apt-get update``) and read its files."""
    prefix = apt_prefix()
    print(f"Fashion-MNIST is not on this machine: installing Debian's package {DEBIAN_PACKAGE} "
          f"into {DEBIAN_DIR}.", flush=True)
    apt_get = [*prefix, "apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"]
    update = apt_step([*apt_get, "update", "-qq"])
    install = apt_step([*apt_get, "install", "-y", "-qq", DEBIAN_PACKAGE])
    if install.returncode != 0:
        after = f"; apt-get update before it failed: {last_line(update.stdout)}" if update.returncode else ""
        raise RouteUnavailable(
            f"apt-get install exited with {install.returncode}: {last_line(install.stdout)}{after}"
        )
    problem = directory_problem(DEBIAN_DIR)
    if problem:
        raise RouteUnavailable(f"installed, but {DEBIAN_DIR} {problem}")
    return read_dir(DEBIAN_DIR)


def apt_step(command: list[str]) -> subprocess.CompletedProcess:
    """Run one apt-get command, printed, non-interactive, within `APT_TIMEOUT_S`."""
    print(f"  $ {' '.join(command)}", flush=True)
    start = time.monotonic()
    try:
        result = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, timeout=APT_TIMEOUT_S,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
    except subprocess.TimeoutExpired:
        raise RouteUnavailable(f"`{' '.join(command)}` did not finish within {APT_TIMEOUT_S} s") from None
    outcome = "done" if result.returncode == 0 else f"failed (exit code {result.returncode})"
    print(f"    {outcome} in {time.monotonic() - start:.0f} s", flush=True)
    return result


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def keras_download() -> FashionMnist:
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return checked(arrays, {key: f"Keras's download ({key})" for key in arrays},
                   source="Keras's download")


def not_found_message(tried: Sequence[str]) -> str:
    places = "\n".join(f"  - {place}" for place in tried)
    return (
        "Fashion-MNIST was not found. Tried, in order:\n"
        f"{places}\n"
        "Provide the four files "
        f"({', '.join(FILES.values())}) in one of these ways:\n"
        "  - pass --data-dir DIR pointing at a directory that holds them;\n"
        f"  - on Debian/Ubuntu: apt-get install {DEBIAN_PACKAGE} "
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
