"""The sequence family: `SequenceModel`, the base of models of regularly sampled
sequences [N, T, *data_shape] that reconstruct a whole sequence from its first
frames (ODE2VAE).

Its serving endpoint: `reconstruct(sequence [None, None, *data_shape]) ->
{"prediction"}` (also `serving_default`), on the input's scale (raw pixels 0–255
for images); `ode-zoo predict` draws predictions against the truth.

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("ode2vae_mocap", load_weights=False)
    >>> model.family, sorted(model.serving_endpoints())
    ('sequence_vae', ['reconstruct', 'serving_default'])
"""
from __future__ import annotations

from typing import ClassVar, Dict, Optional, Tuple

import keras
import tensorflow as tf

from ode_zoo.models.base import Endpoint, ZooModel, spec


class SequenceModel(ZooModel, keras.Model):
    """Base of the sequence family; subclasses set `data_shape` and implement
    `reconstruct(sequences)`."""

    family: ClassVar[str] = "sequence_vae"
    headline_metrics: ClassVar[Tuple[str, ...]] = ("test_mse", "test_nll")
    picture: ClassVar[Optional[str]] = "sequence_predictions"

    def reconstruct(self, sequences: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def serving_endpoints(self) -> Dict[str, Endpoint]:
        def reconstruct(sequence: tf.Tensor) -> Dict[str, tf.Tensor]:
            return {"prediction": self.reconstruct(sequence)}

        inputs = spec("sequence", (None, *self.data_shape))
        return {"serving_default": Endpoint(inputs, reconstruct),
                "reconstruct": Endpoint(inputs, reconstruct)}
