"""The 2-D toy densities of FFJORD's experiments (Grathwohl et al. 2019), as
seeded numpy samplers: roughly zero-mean points of scale ~1–4 in [-4, 4]².

Example:
    >>> x = sample_toy("8gaussians", 5, seed=0)
    >>> x.shape, x.dtype.name
    ((5, 2), 'float32')
    >>> bool((x == sample_toy("8gaussians", 5, seed=0)).all())
    True
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import tensorflow as tf


def _eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussians (std 0.5/√2) at the 8 compass points of a circle of radius 4/√2."""
    angles = rng.integers(0, 8, n) * (np.pi / 4)
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centers + 0.5 * rng.standard_normal((n, 2))) / np.sqrt(2.0)


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform on the 8 black cells of a 4×4 board of 2×2 squares on [-4, 4]²;
    a cell (i, j) (its lower corner at (2i − 4, 2j − 4)) is black when i + j is even."""
    i = rng.integers(0, 4, n)
    j = 2 * rng.integers(0, 2, n) + (i % 2)
    corners = np.stack([2.0 * i - 4.0, 2.0 * j - 4.0], axis=1)
    return corners + 2.0 * rng.random((n, 2))


def _two_spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two interleaved Archimedean spirals (1.5 turns each, one the other rotated
    by π) with Gaussian noise, divided by 3."""
    theta = np.sqrt(rng.random(n)) * 3.0 * np.pi
    arm = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    points = arm * np.stack([-np.cos(theta) * theta, np.sin(theta) * theta], axis=1)
    return (points + 0.5 * rng.standard_normal((n, 2))) / 3.0


def _pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
    """Five curved arms: Gaussian blobs (radial std 0.3, tangential std 0.05)
    at radius 1, each rotated by its arm's angle plus 0.25·exp(radial position), ×2."""
    arms = rng.integers(0, 5, n)
    radial = 1.0 + 0.3 * rng.standard_normal(n)
    tangential = 0.05 * rng.standard_normal(n)
    angle = arms * (2 * np.pi / 5) + 0.25 * np.exp(radial)
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.stack([cos * radial - sin * tangential, sin * radial + cos * tangential], 1)
    return 2.0 * points


def _moons(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two interleaved half circles (radius 1) with noise 0.1, centred, ×2."""
    theta = np.pi * rng.random(n)
    lower = rng.random(n) < 0.5
    x = np.where(lower, 1.0 - np.cos(theta), np.cos(theta))
    y = np.where(lower, 0.5 - np.sin(theta), np.sin(theta))
    points = np.stack([x - 0.5, y - 0.25], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2.0 * points


def _circles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two concentric circles of radii 3 and 1.5 with noise 0.08·3."""
    theta = 2 * np.pi * rng.random(n)
    radius = np.where(rng.random(n) < 0.5, 3.0, 1.5)[:, None]
    return (radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
            + 0.24 * rng.standard_normal((n, 2)))


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four concentric rings of radii 0.75, 1.5, 2.25, 3 with noise 0.08."""
    theta = 2 * np.pi * rng.random(n)
    radius = 0.75 * (1 + rng.integers(0, 4, n))[:, None]
    return (radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
            + 0.08 * rng.standard_normal((n, 2)))


def _swissroll(rng: np.random.Generator, n: int) -> np.ndarray:
    """The swiss roll's 2-D spiral t·(cos t, sin t), t ∈ [1.5π, 4.5π], noise 1, ÷5,
    shifted by its mean (−2, 0) before the division."""
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    points = np.stack([t * np.cos(t) - 2.0, t * np.sin(t)], axis=1)
    return (points + rng.standard_normal((n, 2))) / 5.0


TOY_SETS: Dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "8gaussians": _eight_gaussians, "checkerboard": _checkerboard, "2spirals": _two_spirals,
    "pinwheel": _pinwheel, "moons": _moons, "circles": _circles, "rings": _rings,
    "swissroll": _swissroll,
}


def sample_toy(name: str, n: int, seed: int = 0) -> np.ndarray:
    """`n` float32 points [n, 2] of the toy set `name`; the same seed gives the same points.

    Example:
        >>> sample_toy("checkerboard", 3, seed=1).shape
        (3, 2)
        >>> sample_toy("nope", 3)
        Traceback (most recent call last):
        ...
        ValueError: Unknown toy set 'nope'; available toy sets are ['2spirals', ...].
    """
    if name not in TOY_SETS:
        raise ValueError(f"Unknown toy set {name!r}; available toy sets are {sorted(TOY_SETS)}.")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    rng = np.random.default_rng(seed)
    return TOY_SETS[name](rng, int(n)).astype(np.float32)


def toy_dataset(name: str, n: int, batch_size: int = 200, seed: int = 0) -> tf.data.Dataset:
    """`n` points of `sample_toy(name, n, seed)` as float32 [batch_size, 2] batches
    (the last one may be smaller), in a fixed order.

    Example:
        >>> batch = next(iter(toy_dataset("pinwheel", 100, batch_size=32)))
        >>> batch.shape
        TensorShape([32, 2])
    """
    return tf.data.Dataset.from_tensor_slices(sample_toy(name, n, seed)).batch(batch_size)
