"""The MNIST test digits the demos show: the first `count` of the full test set
where it is found, else the 64 shipped inside the package
(`assets/mnist_test_64.npz`: the first 64 MNIST test images and labels, CC BY-SA
3.0; see `assets/README.md`), with one line saying so.

Example:
    >>> images, labels = shipped_digits()
    >>> images.shape, images.dtype, labels[:5].tolist()
    ((64, 28, 28, 1), dtype('uint8'), [7, 2, 1, 0, 4])
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Tuple

import numpy as np

from ode_zoo.datasets import load_mnist

SHIPPED = Path(__file__).resolve().parent / "assets" / "mnist_test_64.npz"
SHIPPED_COUNT = 64


def shipped_digits() -> Tuple[np.ndarray, np.ndarray]:
    """The shipped first 64 MNIST test images, uint8 [64, 28, 28, 1] (raw 0–255), and
    their labels, int64 [64]."""
    with np.load(SHIPPED) as archive:
        return archive["images"], archive["labels"].astype(np.int64)


def demo_test_digits(count: int, data_dir: Optional[str] = None,
                     say: Callable[[str], None] = print) -> Tuple[np.ndarray, np.ndarray]:
    """The first `count` MNIST test images (uint8 raw 0–255) and labels.

    From the full test set where `load_mnist` finds it (a Keras download is tried
    only when more than the shipped 64 are asked for); else the shipped digits, at
    most 64, and `say` is told so in one line.

    Example:
        >>> images, labels = demo_test_digits(4, data_dir="/nowhere", say=print)  # doctest: +SKIP
        MNIST test set not found (set ODE_ZOO_DATA or pass --data-dir): using the 64 test digits shipped with ode_zoo.
    """
    try:
        images, labels = load_mnist("test", data_dir=data_dir, download=count > SHIPPED_COUNT)
    except FileNotFoundError:
        images, labels = shipped_digits()
        fewer = f", {len(images)} instead of {count}" if count > len(images) else ""
        say("MNIST test set not found (set ODE_ZOO_DATA or pass --data-dir): using the "
            f"{len(images)} test digits shipped with ode_zoo{fewer}.")
    return images[:count], labels[:count]
