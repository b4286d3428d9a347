"""`DEQClassifier`: a single-stream convolutional deep equilibrium classifier
(MDEQ-style cell, Bai et al. 2020) on the zoo's MNIST stem and head; calls and
`predict` warn with the share of images whose equilibrium was not found.

Example:
    >>> import tensorflow as tf
    >>> model = DEQClassifier(filters=8, groups=4, max_iter=5)
    >>> model(tf.zeros((2, 28, 28, 1))).shape
    TensorShape([2, 10])
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.layers import ConvDEQCell, DEQBlock
from ode_zoo.models.image_classifier import ImageClassifier


@keras.saving.register_keras_serializable(package="ode_zoo")
class DEQClassifier(ImageClassifier):
    """Images (float32 raw pixels 0–255, [N, H, W, C]) to class logits.

    The `ImageClassifier` stem gives the injection x (6×6×filters); a `DEQBlock`
    finds z* = f(z*, x) with a `ConvDEQCell`; the head pools z*.

    Args:
      num_classes, image_shape, filters, groups: see `ImageClassifier`.
      hidden_filters: channels inside the cell (default `filters`).
      method, tol, max_iter: forward fixed-point solver (see `ode_zoo.fixed_point`).
      gradient, backward_method, backward_tol, backward_max_iter, phantom_steps,
        phantom_damping, jacobian_weight, jacobian_frequency: see `DEQBlock`.
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (28, 28, 1),
                 filters: int = 64, groups: int = 32, hidden_filters: Optional[int] = None,
                 method: str = "anderson", tol: float = 1e-3, max_iter: int = 30,
                 gradient: str = "implicit", backward_method: Optional[str] = None,
                 backward_tol: float = 1e-3, backward_max_iter: int = 30,
                 phantom_steps: int = 5, phantom_damping: float = 0.5,
                 jacobian_weight: float = 0.0, jacobian_frequency: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, image_shape, filters, groups, **kwargs)
        self.hidden_filters = int(hidden_filters or filters)
        self.solver = dict(method=method, tol=tol, max_iter=max_iter, gradient=gradient,
                           backward_method=backward_method, backward_tol=backward_tol,
                           backward_max_iter=backward_max_iter, phantom_steps=phantom_steps,
                           phantom_damping=phantom_damping, jacobian_weight=jacobian_weight,
                           jacobian_frequency=jacobian_frequency)
        cell = ConvDEQCell(filters, self.hidden_filters, groups, name="cell")
        self.deq_block = DEQBlock(cell, name="deq", **self.solver)

    def body(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.deq_block(h, training=training)

    def build_body(self, shape: Tuple) -> None:
        self.deq_block.build(shape)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras `predict`, then a `RuntimeWarning` with the share of images whose
        equilibrium was not found (eager calls warn per batch; `predict` runs in a
        `tf.function`, so it reads the block's `forward_not_converged` metric).

        Example:
            >>> import numpy as np, warnings
            >>> model = DEQClassifier(filters=8, groups=4, max_iter=1, tol=1e-9)
            >>> with warnings.catch_warnings(record=True) as caught:
            ...     warnings.simplefilter("always")
            ...     _ = model.predict(np.full((2, 28, 28, 1), 9.0, "float32"), verbose=0)
            >>> str(caught[-1].message).startswith("deq: 2 of 2 samples (100%) did not converge")
            True
        """
        failed, samples = self.deq_block.forward_counts()
        outputs = super().predict(x, *args, **kwargs)
        if not self.run_eagerly:
            failed_now, samples_now = self.deq_block.forward_counts()
            self.deq_block.warn_not_converged(failed_now - failed, samples_now - samples,
                                              stacklevel=2)
        return outputs

    def output_tolerance(self, output: Optional[str] = None) -> Tuple[float, float]:
        """The fixed point is known to the solver's relative tolerance only: two
        runs whose round-off differs may stop an iteration apart."""
        return max(1e-4, self.solver["tol"]), max(1e-5, self.solver["tol"])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(hidden_filters=self.hidden_filters, **self.solver)
        return config
