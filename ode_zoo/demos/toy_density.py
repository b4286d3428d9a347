"""Picture of a 2-D flow: the data, the model's samples, and its density on a
grid, side by side in one PNG (used by the toy flows' demos).
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
from matplotlib.figure import Figure

from ode_zoo.models.ffjord_toy import FFJORDToyFlow


def plot_toy_density(model: FFJORDToyFlow, data: np.ndarray, output_png: Union[str, os.PathLike],
                     extent: float = 4.0, grid_size: int = 100, num_samples: int = 2000,
                     seed: int = 0) -> str:
    """Write a PNG of three panels: the data, the model's samples and its density
    exp(log_prob) on a grid over [-extent, extent]²; returns the path.

    Example:
        >>> from ode_zoo.datasets.toy2d import sample_toy
        >>> model = FFJORDToyFlow(hidden_units=(4,), eval_method="rk4", eval_num_steps=2)
        >>> plot_toy_density(model, sample_toy("moons", 100), "moons.png", grid_size=10,
        ...                  num_samples=100)
        'moons.png'
    """
    axis = np.linspace(-extent, extent, grid_size, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    density = np.exp(model.log_prob(grid).numpy()).reshape(grid_size, grid_size)
    samples = model.sample(num_samples, seed=seed).numpy()
    figure = Figure(figsize=(12, 4))
    axes = figure.subplots(1, 3)
    limits = [-extent, extent]
    for ax, points, title in ((axes[0], np.asarray(data), "data"),
                              (axes[1], samples, "samples")):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.5)
        ax.set(title=title, xlim=limits, ylim=limits, aspect="equal")
    axes[2].imshow(density, origin="lower", extent=(-extent, extent, -extent, extent),
                   cmap="viridis")
    axes[2].set_title("density")
    figure.tight_layout()
    figure.savefig(output_png)
    return str(output_png)
