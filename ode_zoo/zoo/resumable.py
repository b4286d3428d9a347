"""Evaluations that survive interruption: a flow's likelihood of 10,000 test images and
its 10,000 samples take hours on a CPU, longer than a job may live. With a state
directory, `evaluate_model` saves after every batch the model's metric states
(`MetricCheckpoint`) and the samples drawn so far (`resumable_batches`), each with a key of
the weights and settings; run again with the same key, it continues after the last
saved batch and gives the numbers an uninterrupted run gives. Another key starts over.

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> cache = (Path(tempfile.mkdtemp()) / "squares.npz", "key")
    >>> resumable_batches(3, lambda i: np.array([i * i]), cache, verbose=0).tolist()
    [0, 1, 4]
    >>> resumable_batches(3, lambda i: 1 / 0, cache, verbose=0).tolist()   # all saved
    [0, 1, 4]
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import keras
import numpy as np

from ode_zoo.training.checkpoints import atomic_write, metric_variables


def evaluation_key(model: keras.Model, settings: Dict[str, Any]) -> str:
    """SHA-256 of the model's weights and the JSON of `settings` (config, split)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _save(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Write the .npz whole through `atomic_write` (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(str(path), buffer.getvalue())


def _load(path: Path, key: str) -> Optional[Dict[str, np.ndarray]]:
    """The arrays saved at `path` under `key`; None if absent, unreadable or another key."""
    try:
        with np.load(path) as saved:
            arrays = dict(saved)
    except (OSError, ValueError):
        return None
    return arrays if str(arrays.pop("key", "")) == key else None


def recorded_results(model: keras.Model, logs: Dict[str, Any]) -> Dict[str, float]:
    """The values of the evaluation `logs` (what `test_step` returns), each read from its
    metric's current state where it names one, without the metrics nothing updated (an
    evaluation leaves training-only ones, backward solves and regularizers, empty)."""
    metrics = {m.name: m for m in model.metrics}
    return {name: float(metrics[name].result() if name in metrics else value)
            for name, value in logs.items()
            if not (name in metrics and hasattr(metrics[name], "count")
                    and float(metrics[name].count) == 0)}


class MetricCheckpoint(keras.callbacks.Callback):
    """A `model.evaluate` callback that saves, after every batch, the model's metric
    variables, the batches done and `recorded_results` to `path`. `done` and
    `results` are those of an earlier run with the same `key`: evaluate the data
    without its first `done` batches, and after the first of them this callback adds
    the saved states to the model's (metric states that add up: means, sums and
    counts, which every Keras mean-type metric and AUC keep)."""

    def __init__(self, path: Path, key: str) -> None:
        super().__init__()
        self.path, self.key = Path(path), key
        saved = _load(self.path, key) or {}
        self.done = int(saved.get("done", 0))
        self.results: Dict[str, float] = json.loads(str(saved.get("results", "{}")))
        states = sum(name.startswith("v") for name in saved)
        self.saved = [saved[f"v{i}"] for i in range(states)] if saved else None
        self._base = self.done

    def on_test_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        variables = metric_variables(self.model)       # each shared variable once
        if batch == 0 and self.saved is not None:
            if len(self.saved) != len(variables):
                raise ValueError(f"{self.path} holds {len(self.saved)} metric states, the "
                                 f"model has {len(variables)}: delete it to start over.")
            for variable, value in zip(variables, self.saved):
                variable.assign(variable + value)
        self.done = self._base + batch + 1
        self.results = recorded_results(self.model, logs or {})
        _save(self.path, {"key": np.array(self.key), "done": np.array(self.done),
                          "results": np.array(json.dumps(self.results)),
                          **{f"v{i}": np.asarray(v) for i, v in enumerate(variables)}})


def resumable_batches(count: int, compute: Callable[[int], np.ndarray],
                      cache: Optional[Tuple[Path, str]] = None, verbose: int = 1,
                      unit: str = "batch") -> np.ndarray:
    """np.concatenate([compute(0), ..., compute(count − 1)]) behind a progress bar; with
    `cache` (a path and a key), the results are saved there after every batch and read
    back on a rerun with the same key."""
    saved = _load(Path(cache[0]), cache[1]) if cache else None
    parts: List[np.ndarray] = [saved[f"b{i}"] for i in range(len(saved))] if saved else []
    bar = keras.utils.Progbar(count, verbose=verbose, unit_name=unit)
    bar.update(len(parts))
    for index in range(len(parts), count):
        parts.append(np.asarray(compute(index)))
        if cache:
            _save(Path(cache[0]), {"key": np.array(cache[1]),
                                   **{f"b{i}": part for i, part in enumerate(parts)}})
        bar.update(index + 1)
    return np.concatenate(parts)
