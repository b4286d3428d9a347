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
from ode_zoo.models.base import ZooModel


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODENetClassifier(ZooModel, keras.Model):
    """Images (float32 raw pixels 0–255, [N, H, W, C]) to class logits.

    Stem: Conv 3×3 → GN → ReLU → Conv 4×4/2 → GN → ReLU → Conv 4×4/2 (28 → 6).
    ODEBlock with `ConvVectorField` over t ∈ [0, 1]. Head: GN → ReLU → global
    average pool → Dense. About 0.21M parameters with the defaults.

    Args:
      num_classes: number of classes.
      image_shape: (H, W, C) of the inputs.
      filters, groups: feature maps and GroupNorm groups.
      method, rtol, atol, step_size, num_steps, adjoint, max_num_steps: the
        ODEBlock's solver (see `ode_zoo.odeint`).
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (28, 28, 1),
                 filters: int = 64, groups: int = 32, method: str = "dopri5",
                 rtol: float = 1e-3, atol: float = 1e-3, step_size: Optional[float] = None,
                 num_steps: Optional[int] = None, adjoint: Union[bool, str] = True,
                 max_num_steps: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.filters, self.groups = int(filters), int(groups)
        self.solver = dict(method=method, rtol=rtol, atol=atol, step_size=step_size,
                           num_steps=num_steps, adjoint=adjoint, max_num_steps=max_num_steps)
        norm = lambda name: keras.layers.GroupNormalization(groups, name=name)  # noqa: E731
        self.stem = [
            keras.layers.Conv2D(filters, 3, name="stem_conv_0"), norm("stem_norm_0"),
            keras.layers.ReLU(),
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(filters, 4, 2, name="stem_conv_1"),
            norm("stem_norm_1"), keras.layers.ReLU(),
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(filters, 4, 2, name="stem_conv_2"),
        ]
        self.ode_block = ODEBlock(ConvVectorField(filters, groups), name="ode_block",
                                  **self.solver)
        self.head = [norm("head_norm"), keras.layers.ReLU(),
                     keras.layers.GlobalAveragePooling2D(),
                     keras.layers.Dense(num_classes, name="logits")]

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"ODENetClassifier expects images of shape [N, "
                             f"{', '.join(map(str, self.image_shape))}], got {images.shape}.")
        if not images.dtype.is_floating:
            raise TypeError(f"Images must be float32 raw pixel values 0–255, got "
                            f"{images.dtype.name}; cast them with tf.cast(x, tf.float32).")
        images = tf.debugging.assert_all_finite(
            images, "ODENetClassifier: images contain NaN or inf; expected raw pixels 0–255.")
        h = tf.cast(images, self.compute_dtype) / 255.0
        for layer in self.stem:
            h = layer(h)
        h = self.ode_block(h)
        for layer in self.head:
            h = layer(h)
        return h

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_classes=self.num_classes, image_shape=list(self.image_shape),
                      filters=self.filters, groups=self.groups, **self.solver)
        return config
