"""Atomic training checkpoints: model variables, optimizer variables, the state
of the model's metrics (a running epoch's Mean totals and counts) and the loop
position in one file, written to a temporary name and renamed, so a kill -9 at
any moment leaves either the old or the new checkpoint — never a torn one. The
temporary files such a kill (or a full disk) leaves behind are removed by
`remove_stale_temp_files` on the next start.

Example:
    >>> import keras, tempfile, os
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.npz")
    >>> save_checkpoint(path, model, {"epoch": 1, "step": 3})
    >>> load_checkpoint(path, model)
    {'epoch': 1, 'step': 3}
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
from typing import Any, Dict, List, Optional, Sequence

import keras
import numpy as np


class IncompatibleCheckpointError(ValueError):
    """A checkpoint whose variables do not fit the model being trained."""


def _optimizer_variables(model: keras.Model) -> List:
    optimizer = model.optimizer
    if not optimizer.built:
        with model.distribute_strategy.scope():     # mirrored like the model's variables
            optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


def metric_variables(model: keras.Model) -> List:
    """The variables of the model's metrics (`model.metrics`: a Mean's total and
    count, ...), each once, in a fixed order."""
    seen, variables = set(), []
    for variable in model.metrics_variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def temp_path(path: str) -> str:
    """The temporary name `path` is written under by this process."""
    return f"{path}.tmp-{os.getpid()}"


# `<name>.tmp-<pid>` (atomic_write) and `tmp-<pid>.<name>` (the trainer's best weights).
_TEMP_FILE = re.compile(r"(?:.+\.tmp-(\d+)|tmp-(\d+)\..+)")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                   # e.g. PermissionError: another user's process
        return True
    return True


def remove_stale_temp_files(directory: str) -> List[str]:
    """Remove the temporary files in `directory` (`checkpoint.npz.tmp-PID`, ...) of
    processes that no longer run: what a kill -9 or a full disk left of an atomic
    write. Returns the names removed.

    Example:
        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> open(os.path.join(directory, "checkpoint.npz.tmp-999999999"), "w").close()
        >>> remove_stale_temp_files(directory)
        ['checkpoint.npz.tmp-999999999']
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        match = _TEMP_FILE.fullmatch(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(path) and not _running(int(match.group(1) or match.group(2))):
            try:
                os.remove(path)
            except FileNotFoundError:
                continue
            removed.append(name)
    return removed


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename; the
    temporary file is removed if the write fails (full disk, Ctrl-C)."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def save_checkpoint(path: str, model: keras.Model, state: Dict[str, Any],
                    metrics: Optional[Sequence[np.ndarray]] = None) -> None:
    """Save model and optimizer variables, the metrics' variables (their current
    values, or `metrics` in the order of `metric_variables(model)`) and the
    JSON-serializable `state`."""
    arrays = {f"model/{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer/{i}": np.asarray(v.numpy())
                   for i, v in enumerate(_optimizer_variables(model))})
    if metrics is None:
        metrics = [v.numpy() for v in metric_variables(model)]
    arrays.update({f"metrics/{i}": np.asarray(value) for i, value in enumerate(metrics)})
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def _saved(arrays: Dict[str, np.ndarray], prefix: str) -> List[str]:
    return sorted((k for k in arrays if k.startswith(prefix + "/")),
                  key=lambda k: int(k.split("/")[1]))


def load_checkpoint(path: str, model: keras.Model) -> Dict[str, Any]:
    """Restore variables saved by `save_checkpoint`; returns the saved state.

    Raises IncompatibleCheckpointError naming the file when the variables do
    not match the model (another architecture or config). The metrics' state is
    restored too when the checkpoint holds one that fits.
    """
    try:
        archive = np.load(path)
        arrays = {key: archive[key] for key in archive.files}
    except Exception as e:
        raise IncompatibleCheckpointError(f"Checkpoint {path} cannot be read ({e}).") from e
    for prefix, variables in (("model", model.variables),
                              ("optimizer", _optimizer_variables(model))):
        saved = _saved(arrays, prefix)
        if len(saved) != len(variables):
            raise IncompatibleCheckpointError(
                f"Checkpoint {path} holds {len(saved)} {prefix} variables; the model has "
                f"{len(variables)}. It was written for another model or config: start "
                "without --resume or point to the right run directory.")
        for key, variable in zip(saved, variables):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise IncompatibleCheckpointError(
                    f"Checkpoint {path}: {prefix} variable {variable.path} has shape "
                    f"{tuple(variable.shape)} in the model but {arrays[key].shape} in the "
                    "checkpoint. It was written for another model or config.")
        for key, variable in zip(saved, variables):
            variable.assign(arrays[key])
    _restore_metrics(path, arrays, metric_variables(model))
    return json.loads(arrays["state"].tobytes().decode())


def _restore_metrics(path: str, arrays: Dict[str, np.ndarray], variables: List) -> None:
    """Restore the metrics' variables, unless the checkpoint has none (written
    before they were saved) or they do not fit (the model's metrics changed, not
    its weights): then the metrics keep their values, with a warning."""
    saved = _saved(arrays, "metrics")
    if not saved:
        return
    if len(saved) != len(variables) or any(
            tuple(arrays[key].shape) != tuple(variable.shape)
            for key, variable in zip(saved, variables)):
        warnings.warn(f"Checkpoint {path} holds the state of other metrics than the model's; "
                      "the running epoch's metric averages start over.", stacklevel=3)
        return
    for key, variable in zip(saved, variables):
        variable.assign(arrays[key])
