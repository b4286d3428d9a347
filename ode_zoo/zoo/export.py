"""`export(model, directory, version=1)`: a zoo model as a SavedModel for TF Serving.

`directory/<version>/` gets one signature per endpoint of the model's family
(`ENDPOINTS`); TF Serving loads it with `--model_base_path=directory`. Every
endpoint input is batch-major, so the REST `instances` row format works.
Classifiers: `serving_default(images float32 [None, H, W, C], raw pixels 0–255)
-> {"probabilities", "logits"}`. Flows (models with `log_prob(x)` and
`sample(z)`): `log_prob(x float32 [None, *example shape]) -> {"log_prob"}` (nats;
also `serving_default`) and `sample(z float32 [None, D] base noise) -> {"x"}`,
where the example shape is the dataset's ([2] for toy2d, [28, 28, 1] for MNIST)
and D the number of its elements. Image flows (models with `bits_per_dim`, such
as ffjord_mnist) take raw pixels 0–255 as `x`, sample images of raw pixels, and
their `log_prob` also returns `bits_per_dim` = −log_prob / (D·ln 2), converted
from the same `log_prob` (one solve, one dequantization draw). Sequence VAEs (ODE2VAE):
`reconstruct(sequence float32 [None, None, *data shape]) -> {"prediction"}`
(also `serving_default`), every frame predicted from the first m frames, on the
input's scale (raw pixels 0–255 for images).

A new family adds a row to `ENDPOINTS`: endpoint name -> `Endpoint(inputs,
function)`, where `inputs(model)` gives the named `tf.TensorSpec`s and
`function(model)` the Python function of those inputs returning a dict of outputs.

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
from typing import Any, Callable, Dict, Mapping, NamedTuple, Union

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.flows.dequantization import bits_per_dim
from ode_zoo.zoo.recipes import example_shape


class Endpoint(NamedTuple):
    """One serving signature: named batch-major input specs and the outputs function."""
    inputs: Callable[[keras.Model], Dict[str, tf.TensorSpec]]
    function: Callable[[keras.Model], Callable[..., Dict[str, tf.Tensor]]]


def _images(model: keras.Model) -> Dict[str, tf.TensorSpec]:
    return {"images": tf.TensorSpec([None, *model.image_shape], tf.float32, name="images")}


def _classify(model: keras.Model) -> Callable[..., Dict[str, tf.Tensor]]:
    def classify(images: tf.Tensor) -> Dict[str, tf.Tensor]:
        logits = model(images, training=False)
        return {"probabilities": tf.nn.softmax(logits), "logits": logits}
    return classify


def _points(model: keras.Model) -> Dict[str, tf.TensorSpec]:
    shape = example_shape(model.zoo_config)
    return {"x": tf.TensorSpec([None, *shape], tf.float32, name="x")}


def _noise(model: keras.Model) -> Dict[str, tf.TensorSpec]:
    size = int(np.prod(example_shape(model.zoo_config)))
    return {"z": tf.TensorSpec([None, size], tf.float32, name="z")}


def _log_prob(model: keras.Model) -> Callable[..., Dict[str, tf.Tensor]]:
    def log_prob(x: tf.Tensor) -> Dict[str, tf.Tensor]:
        values = model.log_prob(x)
        if not hasattr(model, "bits_per_dim"):
            return {"log_prob": values}
        return {"log_prob": values,
                "bits_per_dim": bits_per_dim(values, int(np.prod(x.shape[1:])))}
    return log_prob


def _sample(model: keras.Model) -> Callable[..., Dict[str, tf.Tensor]]:
    def sample(z: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"x": model.sample(z)}
    return sample


def _sequences(model: keras.Model) -> Dict[str, tf.TensorSpec]:
    return {"sequence": tf.TensorSpec([None, None, *model.data_shape], tf.float32,
                                      name="sequence")}


def _reconstruct(model: keras.Model) -> Callable[..., Dict[str, tf.Tensor]]:
    def reconstruct(sequence: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"prediction": model.reconstruct(sequence)}
    return reconstruct


ENDPOINTS: Dict[str, Dict[str, Endpoint]] = {
    "classifier": {"serving_default": Endpoint(_images, _classify)},
    "flow": {"serving_default": Endpoint(_points, _log_prob),
             "log_prob": Endpoint(_points, _log_prob),
             "sample": Endpoint(_noise, _sample)},
    "sequence_vae": {"serving_default": Endpoint(_sequences, _reconstruct),
                     "reconstruct": Endpoint(_sequences, _reconstruct)},
}


def endpoints(model: keras.Model) -> Dict[str, Endpoint]:
    """The endpoints of a zoo model's family; raises ValueError for other models."""
    config = getattr(model, "zoo_config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no zoo config, so its serving endpoints "
                         "are unknown; get zoo models from ode_zoo.load(...).")
    if config["family"] not in ENDPOINTS:
        raise ValueError(f"No serving endpoints for model family {config['family']!r}; "
                         f"families with endpoints are {sorted(ENDPOINTS)}.")
    return ENDPOINTS[config["family"]]


def endpoint_outputs(model: keras.Model, name: str,
                     inputs: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Run endpoint `name` eagerly in Keras: the outputs a serving artifact must match."""
    table = endpoints(model)
    if name not in table:
        raise ValueError(f"Unknown endpoint {name!r}; endpoints are {sorted(table)}.")
    specs = table[name].inputs(model)
    if set(inputs) != set(specs):
        raise ValueError(f"Endpoint {name!r} takes inputs {sorted(specs)}, got {sorted(inputs)}.")
    tensors = {k: tf.convert_to_tensor(v, specs[k].dtype) for k, v in inputs.items()}
    return {k: v.numpy() for k, v in table[name].function(model)(**tensors).items()}


def build(model: keras.Model) -> None:
    """Create the model's variables by running its first endpoint on one zero example."""
    if model.built:
        return
    name, endpoint = next(iter(endpoints(model).items()))
    zeros = {k: np.zeros([1, *spec.shape[1:]], spec.dtype.as_numpy_dtype)
             for k, spec in endpoint.inputs(model).items()}
    endpoint_outputs(model, name, zeros)


def export(model: keras.Model, directory: Union[str, os.PathLike], version: int = 1) -> Path:
    """Write `model` as SavedModel `directory/<version>/`; returns that path.

    The version directory appears complete or not at all (written under a
    temporary name, then renamed), so a running TF Serving never sees half of
    it. An existing version is an error: versions are immutable.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}.")
    target = Path(directory) / str(version)
    if target.exists():
        existing = sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit())
        raise FileExistsError(f"{target} exists (versions present: {existing}); export with "
                              f"version={max(existing, default=0) + 1}.")
    build(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, endpoint in endpoints(model).items():
        specs = endpoint.inputs(model)
        archive.add_endpoint(name, endpoint.function(model), input_signature=list(specs.values()))
    staging = Path(directory) / f".tmp-{version}-{os.getpid()}"
    try:
        # Custom gradients (the adjoint's) are not saved: serving needs no gradients, and
        # saving them fails on the adjoint's backward-NFE metric variable.
        archive.write_out(str(staging), verbose=False,
                          options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
