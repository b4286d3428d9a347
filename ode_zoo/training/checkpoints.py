"""Atomic training checkpoints: model variables, optimizer variables and the
loop position in one file, written to a temporary name and renamed, so a
kill -9 at any moment leaves either the old or the new checkpoint — never a
torn one.

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
from typing import Any, Dict, List

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


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: str, model: keras.Model, state: Dict[str, Any]) -> None:
    """Save model and optimizer variables and the JSON-serializable `state`."""
    arrays = {f"model/{i}": np.asarray(v.numpy()) for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer/{i}": np.asarray(v.numpy())
                   for i, v in enumerate(_optimizer_variables(model))})
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str, model: keras.Model) -> Dict[str, Any]:
    """Restore variables saved by `save_checkpoint`; returns the saved state.

    Raises IncompatibleCheckpointError naming the file when the variables do
    not match the model (another architecture or config).
    """
    try:
        archive = np.load(path)
        arrays = {key: archive[key] for key in archive.files}
    except Exception as e:
        raise IncompatibleCheckpointError(f"Checkpoint {path} cannot be read ({e}).") from e
    for prefix, variables in (("model", model.variables),
                              ("optimizer", _optimizer_variables(model))):
        saved = sorted((k for k in arrays if k.startswith(prefix + "/")),
                       key=lambda k: int(k.split("/")[1]))
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
    return json.loads(arrays["state"].tobytes().decode())
