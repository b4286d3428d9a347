"""Picture of a 2-D flow: the data, the model's samples, and its density on a
grid, side by side in one PNG (what `ode-zoo sample` draws for toy flows).
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from ode_zoo.models.ffjord_toy import FFJORDToyFlow


def plot_toy_density(model: FFJORDToyFlow, data: np.ndarray, output_png: Union[str, os.PathLike],
                     extent: float = 4.0, grid_size: int = 100, num_samples: int = 2000,
                     seed: int = 0, title: Optional[str] = None) -> str:
    """Write a PNG of three panels: the data, `num_samples` model samples (base
    noise from the stateless seed (0, `seed`)) and the density exp(log_prob) on a
    grid over [-extent, extent]²; returns the path.

    Example:
        >>> from ode_zoo.datasets.toy2d import sample_toy
        >>> model = FFJORDToyFlow(hidden_units=(4,), eval_solver={"method": "rk4", "num_steps": 2})
        >>> plot_toy_density(model, sample_toy("moons", 100), "moons.png", grid_size=10,
        ...                  num_samples=100)
        'moons.png'
    """
    axis = np.linspace(-extent, extent, grid_size, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    density = np.exp(model.log_prob(grid).numpy()).reshape(grid_size, grid_size)
    noise = tf.random.stateless_normal((num_samples, 2), seed=[0, seed])
    samples = model.sample(noise).numpy()
    figure = Figure(figsize=(12, 4.4 if title else 4))
    if title:
        figure.suptitle(title)
    axes = figure.subplots(1, 3)
    limits = [-extent, extent]
    for ax, points, title_ in ((axes[0], np.asarray(data), f"data ({len(data)} points)"),
                               (axes[1], samples, f"model samples ({num_samples})")):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
        ax.set(title=title_, xlim=limits, ylim=limits, aspect="equal")
    axes[2].imshow(density, origin="lower", extent=(-extent, extent, -extent, extent),
                   cmap="viridis")
    axes[2].set_title("model density")
    figure.tight_layout()
    figure.savefig(output_png)
    return str(output_png)
