"""Small synthetic 8-bit images for the image-flow tests (not a test module)."""
from __future__ import annotations

import numpy as np


def quadrant_images(n: int, shape=(4, 4, 1), seed: int = 0) -> np.ndarray:
    """Raw pixels: a bright top-left quadrant, the rest dark, all with random variation."""
    rng = np.random.default_rng(seed)
    height, width, channels = shape
    images = rng.integers(0, 40, size=(n, height, width, channels)).astype(np.float32)
    images[:, :height // 2, :width // 2] = rng.integers(
        200, 256, size=(n, height // 2, width // 2, channels))
    return images
