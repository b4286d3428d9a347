"""The end of a zoo model's `train_step`, shared by the models with their own loss:
apply the loss's gradient, update the named `keras.metrics.Mean` trackers, and
return every metric's result (what `fit` logs); `record` is that ending without
the optimizer step. A tracker given a weight (a batch mean's count of terms) keeps
the exact mean over all batches instead of the mean of the batch means.

Example (inside a model's `train_step`):
    >>> with tf.GradientTape() as tape:                                    # doctest: +SKIP
    ...     terms = self.loss_terms(x)
    >>> return minimize_and_record(self, tape, terms["loss"], self._trackers,  # doctest: +SKIP
    ...                            terms)
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import keras
import tensorflow as tf


def minimize_and_record(model: keras.Model, tape: tf.GradientTape, loss: tf.Tensor,
                        trackers: Mapping[str, keras.metrics.Metric],
                        values: Mapping[str, tf.Tensor],
                        weights: Optional[Mapping[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
    """One optimizer step on `loss` (recorded on `tape`) over the model's trainable
    variables; then the trackers are updated (`record`), and the results of all
    `model.metrics` are returned."""
    variables = model.trainable_variables
    model.optimizer.apply(tape.gradient(loss, variables), variables)
    return record(model, trackers, values, weights)


def record(model: keras.Model, trackers: Mapping[str, keras.metrics.Metric],
           values: Mapping[str, tf.Tensor],
           weights: Optional[Mapping[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
    """Update each tracker with the value of its name, weighted by the weight of its
    name in `weights` where it has one; the results of all `model.metrics` (the end
    of a `test_step` too)."""
    weights = weights or {}
    for name, tracker in trackers.items():
        tracker.update_state(values[name], sample_weight=weights.get(name))
    return {m.name: m.result() for m in model.metrics}
