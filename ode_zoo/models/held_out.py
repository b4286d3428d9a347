"""Held-out interpolation of irregular series, in NumPy: hide a seeded random half of
each series' observed values, and score predictions of the hidden values against
per-series mean imputation of the same values.

- `hide_half(mask, rng)`: in each row, ⌊n/2⌋ of its n observed values, uniformly
  chosen. One uniform is drawn per observed value in row-major order, so a row's
  choice depends only on how many values the rows before it observed: batching and
  padding change nothing.
- `held_out_statistics(scaled, visible, hidden, predicted)`: per series and
  variable [N, D], the sums the measures need (`HeldOutStatistics`); concatenate the
  batches' with `concatenate_statistics`.
- `held_out_metrics(statistics)`: the mean squared errors over the hidden values of
  the predictions and of mean imputation, each in two normalizations: `..._mse` over
  all hidden values alike, `..._paper_mse` per series and variable first (0 for a
  variable with nothing hidden), then over the variables, then over the series
  (Rubanova et al.'s `compute_masked_likelihood`; `paper_normalized_mse`).

Mean imputation predicts a hidden value by the mean of the series' visible values of
that variable; where the series has none, by the mean of that variable's visible
values over all series measured (the split, in practice: no hidden value is used;
0 for a variable no series shows).

Example:
    >>> import numpy as np
    >>> mask = np.ones((1, 4, 1))
    >>> hidden = hide_half(mask, np.random.default_rng(0))
    >>> int(hidden.sum())
    2
    >>> scaled = np.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 4, 1)
    >>> stats = held_out_statistics(scaled, mask - hidden, hidden, scaled)
    >>> held_out_metrics(stats)["held_out_mse"]
    0.0
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Sequence

import numpy as np


class HeldOutStatistics(NamedTuple):
    """Per series and variable [N, D], float64: the hidden values' count, the
    predictions' squared error summed over them, their sum and sum of squares; the
    visible values' count and sum."""
    hidden_count: np.ndarray
    squared_error: np.ndarray
    hidden_sum: np.ndarray
    hidden_square_sum: np.ndarray
    visible_count: np.ndarray
    visible_sum: np.ndarray


def hide_half(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The hidden values [N, T, D] (0 and 1, `mask`'s dtype): ⌊n/2⌋ of each row's n
    observed values (`mask` 1), chosen by `rng` (see the module docstring)."""
    observed = np.asarray(mask) > 0
    draws = np.full(observed.shape, np.inf)
    draws[observed] = rng.random(int(observed.sum()))
    rows = draws.reshape(len(draws), -1)
    ranks = np.argsort(np.argsort(rows, axis=1, kind="stable"), axis=1, kind="stable")
    count = observed.reshape(len(observed), -1).sum(axis=1, keepdims=True)
    return (ranks < count // 2).reshape(observed.shape).astype(np.asarray(mask).dtype)


def held_out_statistics(scaled: np.ndarray, visible: np.ndarray, hidden: np.ndarray,
                        predicted: np.ndarray) -> HeldOutStatistics:
    """The statistics of one batch: true `scaled` values, `visible` and `hidden`
    masks (disjoint) and `predicted` values, all [N, T, D]."""
    scaled, predicted = np.asarray(scaled, np.float64), np.asarray(predicted, np.float64)
    hidden, visible = np.asarray(hidden, np.float64), np.asarray(visible, np.float64)
    if np.any(hidden * visible):
        raise ValueError("hidden and visible values overlap: a hidden value must be unseen.")
    return HeldOutStatistics(hidden.sum(1), (np.square(predicted - scaled) * hidden).sum(1),
                             (scaled * hidden).sum(1), (np.square(scaled) * hidden).sum(1),
                             visible.sum(1), (scaled * visible).sum(1))


def concatenate_statistics(parts: Sequence[HeldOutStatistics]) -> HeldOutStatistics:
    """The statistics of several batches, series after series."""
    return HeldOutStatistics(*(np.concatenate(field) for field in zip(*parts)))


def paper_normalized_mse(squared_error: np.ndarray, count: np.ndarray) -> float:
    """Mean over series of the mean over variables of each variable's mean squared
    error (0 where `count` is 0); both [N, D].

    Example:
        >>> paper_normalized_mse(np.array([[4.0, 0.0]]), np.array([[2.0, 0.0]]))
        1.0
    """
    per_variable = np.divide(squared_error, count, out=np.zeros_like(squared_error),
                             where=count > 0)
    return float(per_variable.mean()) if per_variable.size else 0.0


def imputation_squared_error(statistics: HeldOutStatistics) -> np.ndarray:
    """[N, D]: the squared error of mean imputation summed over the hidden values,
    from sums: Σ(x − m)² = Σx² − 2mΣx + n·m² with m the imputed mean."""
    s = statistics
    shown = s.visible_count.sum(0)
    population = np.divide(s.visible_sum.sum(0), shown, out=np.zeros_like(shown),
                           where=shown > 0)
    own = np.divide(s.visible_sum, s.visible_count, out=np.zeros_like(s.visible_sum),
                    where=s.visible_count > 0)
    mean = np.where(s.visible_count > 0, own, population)
    error = s.hidden_square_sum - 2.0 * mean * s.hidden_sum + s.hidden_count * np.square(mean)
    return np.maximum(error, 0.0)                      # round-off below 0


def held_out_metrics(statistics: HeldOutStatistics) -> Dict[str, float]:
    """`held_out_mse`, `held_out_paper_mse` (the predictions) and
    `held_out_mean_imputation_mse`, `held_out_mean_imputation_paper_mse`."""
    count = statistics.hidden_count
    total = max(float(count.sum()), 1.0)
    metrics = {}
    for name, error in (("held_out", statistics.squared_error),
                        ("held_out_mean_imputation", imputation_squared_error(statistics))):
        metrics[f"{name}_mse"] = float(error.sum()) / total
        metrics[f"{name}_paper_mse"] = paper_normalized_mse(error, count)
    return metrics
