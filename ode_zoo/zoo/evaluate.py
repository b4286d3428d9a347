"""Evaluation protocol of zoo models (`ode-zoo eval`): the config's evaluation
split and solver, metrics named as `metadata.json` stores them, and a check
that a fresh evaluation reproduces the stored numbers.

Example:
    >>> metrics = evaluate_model(model, config)          # doctest: +SKIP
    >>> sorted(metrics)                                   # doctest: +SKIP
    ['test_accuracy', 'test_error', 'test_forward_nfe', 'test_loss']
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import keras

from ode_zoo.zoo.recipes import evaluation_data

# Relative tolerance for "reproduces": deterministic CPU evaluation gives the
# same counts; float summation order may move losses in the last digits.
REPRODUCE_RTOL = 1e-4


def evaluate_model(model: keras.Model, config: Dict[str, Any], split: Optional[str] = None,
                   data_dir: Optional[str] = None, verbose: int = 1) -> Dict[str, float]:
    """Metrics of `model` on the config's evaluation split, prefixed by the split name."""
    split = split or config["evaluation"].get("split", config["dataset"]["test_split"])
    results = model.evaluate(evaluation_data(config, split, data_dir), verbose=verbose,
                             return_dict=True)
    metrics: Dict[str, float] = {}
    for name, value in results.items():
        if name.endswith("_backward_nfe"):
            continue                      # no backward pass in evaluation
        key = "forward_nfe" if name.endswith("_nfe") else name
        metrics[f"{split}_{key}"] = float(value)
    if config["family"] == "classifier":
        metrics[f"{split}_error"] = 1.0 - metrics[f"{split}_accuracy"]
    return metrics


def compare_metrics(stored: Dict[str, Any], measured: Dict[str, float],
                    rtol: float = REPRODUCE_RTOL) -> Tuple[bool, List[str]]:
    """(all reproduced, report lines) for every numeric metric in `stored`."""
    lines, ok = [], True
    for name, value in stored.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name not in measured:
            lines.append(f"{name:28s} stored {value:.6g}   not measured")
            ok = False
            continue
        same = abs(measured[name] - value) <= rtol * max(abs(value), 1e-12) + 1e-12
        ok &= same
        lines.append(f"{name:28s} stored {value:.6g}   measured {measured[name]:.6g}   "
                     f"{'ok' if same else 'DIFFERS'}")
    return ok, lines
