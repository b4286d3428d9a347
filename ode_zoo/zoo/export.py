"""`export(model, directory, version=1)`: a zoo model as a SavedModel for TF Serving.

`directory/<version>/` gets one signature per endpoint the model declares
(`model.serving_endpoints()`, see `ode_zoo.models.base`); TF Serving loads it
with `--model_base_path=directory`. Every endpoint input is batch-major, so the
REST `instances` row format works. The families' endpoints: classifiers
`serving_default(images float32 [None, H, W, C], raw pixels 0–255) ->
{"probabilities", "logits"}`; flows `log_prob(x float32 [None, *event shape]) ->
{"log_prob"}` (nats; also `serving_default`) and `sample(z float32 [None, D]
base noise) -> {"x"}`, where image flows (ffjord_mnist, cfm_mnist) take raw
pixels 0–255 as `x`, sample raw pixels, and also return `bits_per_dim` =
−log_prob / (D·ln 2) from the same `log_prob`; sequence models (ODE2VAE)
`reconstruct(sequence float32 [None, None, *data shape]) -> {"prediction"}`
(also `serving_default`), every frame predicted from the first m frames, on the
input's scale.

Example:
    >>> import tempfile, ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
    ...                      method="rk4", num_steps=1)
    >>> path = ode_zoo.export(model, tempfile.mkdtemp())
    >>> path.name
    '1'
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.layers.portable import portable_graphs
from ode_zoo.models.base import Endpoint


def endpoints(model: keras.Model) -> Dict[str, Endpoint]:
    """The serving endpoints a zoo model declares; ValueError for other models."""
    if not callable(getattr(model, "serving_endpoints", None)):
        raise ValueError(f"{type(model).__name__} declares no serving endpoints; zoo models "
                         "(ode_zoo.load(...)) do.")
    return model.serving_endpoints()


def endpoint_outputs(model: keras.Model, name: str,
                     inputs: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Run endpoint `name` eagerly in Keras: the outputs a serving artifact must match."""
    table = endpoints(model)
    if name not in table:
        raise ValueError(f"Unknown endpoint {name!r}; endpoints are {sorted(table)}.")
    specs = table[name].inputs
    if set(inputs) != set(specs):
        raise ValueError(f"Endpoint {name!r} takes inputs {sorted(specs)}, got {sorted(inputs)}.")
    tensors = {k: tf.convert_to_tensor(v, specs[k].dtype) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in table[name].function(**tensors).items()}


def export(model: keras.Model, directory: Union[str, os.PathLike], version: int = 1) -> Path:
    """Write `model` as SavedModel `directory/<version>/`; returns that (absolute) path.

    The version directory appears complete or not at all (written under a
    temporary name, then renamed), so a running TF Serving never sees half of
    it. An existing version is an error: versions are immutable.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}.")
    directory = Path(directory).resolve()    # absolute: checks run in other directories
    target = directory / str(version)
    if target.exists():
        existing = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
        raise FileExistsError(f"{target} exists (versions present: {existing}); export with "
                              f"version={max(existing, default=0) + 1}.")
    model.build_variables()
    archive = keras.export.ExportArchive()
    archive.track(model)
    staging = directory / f".tmp-{version}-{os.getpid()}"
    try:
        with portable_graphs():       # TF Serving runs no XLA unless asked to
            for name, endpoint in endpoints(model).items():
                archive.add_endpoint(name, endpoint.function,
                                     input_signature=list(endpoint.inputs.values()))
            # Custom gradients (the adjoint's) are not saved: serving needs no gradients,
            # and saving them fails on the adjoint's backward-NFE metric variable.
            archive.write_out(str(staging), verbose=False, options=tf.saved_model.SaveOptions(
                experimental_custom_gradients=False))
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
