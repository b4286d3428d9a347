"""MNIST from the four standard idx files (or the Keras cache's mnist.npz).

Where it looks, in order: `data_dir`; `$ODE_ZOO_DATA/mnist` and `$ODE_ZOO_DATA`;
`~/.keras/datasets/mnist` and `~/.keras/datasets` (idx files or Keras's
`mnist.npz`). When nothing is found it tries the normal Keras download; offline,
it fails with a message listing where it looked and how to provide the files.

Splits: "train" is the first 55,000 training images, "validation" the last
5,000 (for model selection), "train_full" all 60,000, "test" the 10,000 test
images (only for the final reported number).

Example:
    >>> images, labels = load_mnist("test")                      # doctest: +SKIP
    >>> images.shape, images.dtype, labels.shape                 # doctest: +SKIP
    ((10000, 28, 28, 1), dtype('uint8'), (10000,))
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ode_zoo.datasets.data_files import search_dirs

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLITS = ("train", "validation", "train_full", "test")
VALIDATION_SIZE = 5000
_MAGIC = {3: 2051, 1: 2049}  # idx magic numbers for images (3-D) and labels (1-D)


def candidate_dirs(data_dir: Optional[str] = None) -> List[Path]:
    """Directories searched for MNIST, in order."""
    return search_dirs("mnist", data_dir)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """An idx(.gz) file as a uint8 array; a corrupt file raises ValueError naming it."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise ValueError(f"Cannot read MNIST file {path}: {e}. Replace it with the original.") from e
    if len(raw) < 8:
        raise ValueError(f"MNIST file {path} is truncated.")
    rank = raw[3]
    magic = int.from_bytes(raw[:4], "big")
    if rank not in _MAGIC or magic != _MAGIC[rank]:
        raise ValueError(f"MNIST file {path} is not an idx file of images or labels "
                         f"(magic number {magic}).")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    body = raw[4 + 4 * rank:]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"MNIST file {path} is truncated: {len(body)} bytes of data for "
                         f"shape {dims}.")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _load_idx_pair(directory: Path, part: str) -> Tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = IDX_FILES[part]
    for name in (images_name, labels_name):
        if _md5(directory / name) != MD5[name]:
            raise ValueError(f"MNIST file {directory / name} does not match the original's md5 "
                             f"{MD5[name]}: it is corrupt or not MNIST. Replace it.")
    return read_idx(directory / images_name), read_idx(directory / labels_name)


def _find(data_dir: Optional[str]):
    """('idx', dir) or ('npz', path) for the first place holding MNIST, else None."""
    for directory in candidate_dirs(data_dir):
        if all((directory / name).is_file() for pair in IDX_FILES.values() for name in pair):
            return "idx", directory
        if (directory / "mnist.npz").is_file():
            return "npz", directory / "mnist.npz"
    return None


def _download() -> None:
    """The normal Keras download into ~/.keras/datasets/mnist.npz."""
    import keras
    keras.datasets.mnist.load_data()


def _load_part(part: str, data_dir: Optional[str], download: bool):
    found = _find(data_dir)
    if found is None and download:
        try:
            _download()
        except Exception as e:  # offline, blocked or failed download: explain below
            download_error = f" The Keras download failed too: {type(e).__name__}: {e}."
        else:
            download_error = ""
        found = _find(data_dir)
    else:
        download_error = ""
    if found is None:
        looked = "\n  ".join(str(d) for d in candidate_dirs(data_dir))
        raise FileNotFoundError(
            f"MNIST not found. Looked for the four idx files ({', '.join(MD5)}) or mnist.npz in:"
            f"\n  {looked}\n{download_error}\nProvide them by setting ODE_ZOO_DATA to a directory "
            "holding mnist/ with the four .gz files, or pass data_dir.")
    kind, where = found
    if kind == "idx":
        return _load_idx_pair(where, part)
    with np.load(where) as archive:
        return archive[f"x_{part}"], archive[f"y_{part}"]


def load_mnist(split: str = "train", data_dir: Optional[str] = None,
               download: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28, 1] (raw 0–255) and labels int64 [N] of a split."""
    if split not in SPLITS:
        raise ValueError(f"Unknown MNIST split {split!r}; available splits are {list(SPLITS)}.")
    images, labels = _load_part("test" if split == "test" else "train", data_dir, download)
    images, labels = images[..., None], labels.astype(np.int64)
    if split == "train":
        return images[:-VALIDATION_SIZE], labels[:-VALIDATION_SIZE]
    if split == "validation":
        return images[-VALIDATION_SIZE:], labels[-VALIDATION_SIZE:]
    return images, labels
