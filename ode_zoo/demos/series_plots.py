"""Pictures of a Latent ODE on PhysioNet 2012 (`ode-zoo predict latent_ode_physionet`):
for a few test patients and frequently observed variables, the observed values and
the model's continuous path through them (`LatentODE.interpolate_at` on a dense
grid from the patient's first observation to 48 h, conditioned on all of the
patient's observed values), in raw units.

Patients are the first test patients (by RecordID) observing each drawn variable at
least `MIN_OBSERVATIONS` times.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from ode_zoo.datasets.physionet2012 import HOURS, VARIABLES, physionet2012

# Drawn variables and their units (PhysioNet 2012's descriptions).
DRAWN = (("HR", "HR (bpm)"), ("MAP", "MAP (mmHg)"), ("Temp", "Temp (°C)"), ("GCS", "GCS (3–15)"))
MIN_OBSERVATIONS = 3
GRID_POINTS = 200


class Trajectories(NamedTuple):
    """What `write_trajectories` drew: the PNG and the patients' RecordIDs."""
    output: str
    record_ids: Tuple[int, ...]

    @property
    def summary(self) -> str:
        return (f"drew {len(self.record_ids)} test patients (RecordIDs "
                f"{', '.join(map(str, self.record_ids))}): observed values and the model's "
                f"path on {GRID_POINTS} times to {HOURS:g} h")


def plot_trajectories(times: np.ndarray, values: np.ndarray, mask: np.ndarray,
                      grid: np.ndarray, path: np.ndarray, labels: Sequence[str],
                      titles: Sequence[str], output_png: Union[str, os.PathLike]) -> str:
    """Write a PNG of patients (rows) × variables (columns), observed values as dots
    and the path as a line, and return its path.

    Args:
      times [N, T], values [N, T, V], mask [N, T, V]: the observations (hours, raw units).
      grid [N, G], path [N, G, V]: the model's values on a grid of hours.
      labels: V axis labels (name and unit); titles: N row titles.
      output_png: the file to write.

    Example:
        >>> t = np.array([[0.0, 10.0, 30.0]]); x = np.array([[[80.0], [90.0], [85.0]]])
        >>> grid = np.linspace(0.0, 48.0, 9)[None]
        >>> plot_trajectories(t, x, np.ones_like(x), grid, np.full((1, 9, 1), 85.0),
        ...                   ["HR (bpm)"], ["patient 1"], "hr.png")
        'hr.png'
    """
    n, v = values.shape[0], values.shape[2]
    figure = Figure(figsize=(3.4 * v, 2.4 * n))
    axes = figure.subplots(n, v, squeeze=False)
    for i in range(n):
        for j in range(v):
            ax, seen = axes[i, j], mask[i, :, j] > 0
            ax.plot(grid[i], path[i, :, j], "-", color="tab:blue", linewidth=1.2,
                    label="Latent ODE path")
            ax.plot(times[i, seen], values[i, seen, j], "o", color="black", markersize=3,
                    label="observed")
            ax.set_xlim(0.0, max(HOURS, float(grid[i, -1])))
            ax.set_ylabel(labels[j], fontsize=8)
            ax.tick_params(labelsize=7)
            if i == n - 1:
                ax.set_xlabel("hours since admission", fontsize=8)
        axes[i, 0].set_title(titles[i], fontsize=9, loc="left")
    axes[0, -1].legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(output_png, dpi=90)
    return str(output_png)


def _patients(mask: np.ndarray, columns: Sequence[int], num: int) -> np.ndarray:
    """The first `num` rows observing each of `columns` at least MIN_OBSERVATIONS times."""
    counts = mask[:, :, list(columns)].sum(axis=1)
    return np.nonzero((counts >= MIN_OBSERVATIONS).all(axis=1))[0][:num]


def write_trajectories(model: keras.Model, output: Union[str, os.PathLike], num: int = 4,
                       data_dir: Optional[str] = None) -> Trajectories:
    """Draw a zoo Latent ODE (from `ode_zoo.load`) on `num` PhysioNet 2012 test
    patients (see the module docstring).

    Example:
        >>> import ode_zoo
        >>> model = ode_zoo.load("latent_ode_physionet")                 # doctest: +SKIP
        >>> write_trajectories(model, "patients.png").output               # doctest: +SKIP
        'patients.png'
    """
    config = getattr(model, "zoo_config", None) or {}
    dataset = config.get("dataset", {})
    if dataset.get("name") != "physionet2012" or model.num_variables != len(VARIABLES):
        raise ValueError(f"series trajectories are drawn for PhysioNet 2012 models; "
                         f"{config.get('name', 'this model')!r} reads "
                         f"{dataset.get('name', 'another dataset')!r}.")
    data = physionet2012(dataset["test_split"], round_hours=dataset.get("round_hours", 0.1),
                         data_dir=data_dir)
    columns = [VARIABLES.index(name) for name, _ in DRAWN]
    rows = _patients(data.mask, columns, num)
    length = int(data.lengths[rows].max())
    inputs = {"times": data.times[rows, :length], "values": data.values[rows, :length],
              "mask": data.mask[rows, :length]}
    start = inputs["times"][:, :1]
    grid = (start + np.linspace(0.0, 1.0, GRID_POINTS, dtype=np.float32)[None, :]
            * (HOURS - start)).astype(np.float32)
    path = np.asarray(tf.function(model.interpolate_at)(inputs, grid))   # a graph: faster
    output = plot_trajectories(inputs["times"], inputs["values"][..., columns],
                               inputs["mask"][..., columns], grid, path[..., columns],
                               [label for _, label in DRAWN],
                               [f"RecordID {data.record_ids[r]}" for r in rows], output)
    return Trajectories(output, tuple(int(data.record_ids[r]) for r in rows))
