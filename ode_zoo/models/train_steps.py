"""The end of a zoo model's `train_step`, shared by the models with their own loss:
apply the loss's gradient, update the named `keras.metrics.Mean` trackers, and
return every metric's result (what `fit` logs); `record` is that ending without
the optimizer step.

Example (inside a model's `train_step`):
    >>> with tf.GradientTape() as tape:                                    # doctest: +SKIP
    ...     terms = self.loss_terms(x)
    >>> return minimize_and_record(self, tape, terms["loss"], self._trackers,  # doctest: +SKIP
    ...                            terms)
"""
from __future__ import annotations

from typing import Dict, Mapping

import keras
import tensorflow as tf


def minimize_and_record(model: keras.Model, tape: tf.GradientTape, loss: tf.Tensor,
                        trackers: Mapping[str, keras.metrics.Metric],
                        values: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """One optimizer step on `loss` (recorded on `tape`) over the model's trainable
    variables; then each tracker is updated with the value of its name, and the
    results of all `model.metrics` are returned."""
    variables = model.trainable_variables
    model.optimizer.apply(tape.gradient(loss, variables), variables)
    return record(model, trackers, values)


def record(model: keras.Model, trackers: Mapping[str, keras.metrics.Metric],
           values: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Update each tracker with the value of its name; the results of all
    `model.metrics` (the end of a `test_step` too)."""
    for name, tracker in trackers.items():
        tracker.update_state(values[name])
    return {m.name: m.result() for m in model.metrics}
