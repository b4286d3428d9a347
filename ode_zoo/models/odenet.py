"""`ODENetClassifier`: the Neural ODE paper's MNIST classifier (Chen et al. 2018):
a downsampling stem, one ODEBlock on 64 feature maps, a pooled linear head.

Example:
    >>> import tensorflow as tf
    >>> model = ODENetClassifier(filters=8, groups=4, method="rk4", num_steps=1)
    >>> model(tf.zeros((2, 28, 28, 1))).shape
    TensorShape([2, 10])
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import keras
import tensorflow as tf

from ode_zoo.layers import ConvVectorField, ODEBlock
from ode_zoo.models.image_classifier import ImageClassifier


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODENetClassifier(ImageClassifier):
    """Images (float32 raw pixels 0–255, [N, H, W, C]) to class logits.

    The `ImageClassifier` stem and head around an ODEBlock with
    `ConvVectorField` over t ∈ [0, 1]. About 0.21M parameters with the defaults.

    Args:
      num_classes, image_shape, filters, groups: see `ImageClassifier`.
      method, rtol, atol, step_size, num_steps, adjoint, max_num_steps: the
        ODEBlock's solver (see `ode_zoo.odeint`).
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (28, 28, 1),
                 filters: int = 64, groups: int = 32, method: str = "dopri5",
                 rtol: float = 1e-3, atol: float = 1e-3, step_size: Optional[float] = None,
                 num_steps: Optional[int] = None, adjoint: Union[bool, str] = True,
                 max_num_steps: int = 1000, **kwargs: Any) -> None:
        super().__init__(num_classes, image_shape, filters, groups, **kwargs)
        self.solver = dict(method=method, rtol=rtol, atol=atol, step_size=step_size,
                           num_steps=num_steps, adjoint=adjoint, max_num_steps=max_num_steps)
        self.ode_block = ODEBlock(ConvVectorField(filters, groups), name="ode_block",
                                  **self.solver)

    def body(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.ode_block(h)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(**self.solver)
        return config
