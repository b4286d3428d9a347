"""Grids of grayscale images in one PNG: each set of images [N, H, W, 1] (raw
pixels 0–255) tiled row by row into one panel, the panels side by side. What
`ode-zoo demo flow` and `ode-zoo sample` draw for image flows.

Example:
    >>> import numpy as np
    >>> digits = np.random.default_rng(0).integers(0, 256, (10, 28, 28, 1))
    >>> tile_images(digits, columns=4).shape            # 3 rows of 4, 1-pixel gaps
    (86, 115)
    >>> plot_image_grids({"noise": digits}, "noise.png", title="random pixels")
    'noise.png'
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
from matplotlib.figure import Figure

GAP_VALUE = 128.0          # mid gray between the images


def tile_images(images: np.ndarray, columns: int = 8, gap: int = 1) -> np.ndarray:
    """One 2-D array [rows·H + gaps, columns·W + gaps] of images [N, H, W, 1] in
    rows of `columns` (fewer for N < columns), `gap` pixels of mid gray apart.

    Example:
        >>> import numpy as np
        >>> tile_images(np.zeros((2, 3, 3, 1)), gap=1)[1].tolist()
        [0.0, 0.0, 0.0, 128.0, 0.0, 0.0, 0.0]
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 1 or not len(images):
        raise ValueError(f"tile_images expects grayscale images [N, H, W, 1] with N >= 1, "
                         f"got shape {images.shape}.")
    count, height, width = images.shape[:3]
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), GAP_VALUE,
                   np.float32)
    for i, image in enumerate(images):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        grid[top:top + height, left:left + width] = image[..., 0]
    return grid


def plot_image_grids(panels: Mapping[str, np.ndarray], output: Union[str, os.PathLike],
                     title: Optional[str] = None, columns: int = 8) -> str:
    """Write a PNG with one panel per entry of `panels` (panel title -> images
    [N, H, W, 1], raw pixels 0–255, white digits on black), each tiled by
    `tile_images`; returns the path."""
    grids = {name: tile_images(images, columns) for name, images in panels.items()}
    aspect = max(grid.shape[0] / grid.shape[1] for grid in grids.values())
    figure = Figure(figsize=(4.4 * len(grids), 4.4 * aspect + (0.8 if title else 0.4)))
    if title:
        figure.suptitle(title, fontsize=10)
    axes = np.atleast_1d(figure.subplots(1, len(grids)))
    for axis, (name, grid) in zip(axes, grids.items()):
        axis.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axis.set_title(name, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    return str(output)
