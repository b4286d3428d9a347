"""`ImageClassifier`: the frame the zoo's MNIST classifiers share — input checks,
a downsampling conv stem (28 → 6), a continuous-depth body, a pooled linear head.

Subclasses build their body in `__init__` and implement `body(h, training)`.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.models import ODENetClassifier
    >>> isinstance(ODENetClassifier(filters=8, groups=4), ImageClassifier)
    True
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from ode_zoo.models.base import ZooModel


class ImageClassifier(ZooModel, keras.Model):
    """Images (float32 raw pixels 0–255, [N, H, W, C]) to class logits.

    Stem: Conv 3×3 → GN → ReLU → Conv 4×4/2 → GN → ReLU → Conv 4×4/2 (28 → 6).
    Head: GN → ReLU → global average pool → Dense.

    Args:
      num_classes: number of classes.
      image_shape: (H, W, C) of the inputs.
      filters, groups: feature maps and GroupNorm groups.
    """

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (28, 28, 1),
                 filters: int = 64, groups: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.filters, self.groups = int(filters), int(groups)
        norm = lambda name: keras.layers.GroupNormalization(groups, name=name)  # noqa: E731
        self.stem = [
            keras.layers.Conv2D(filters, 3, name="stem_conv_0"), norm("stem_norm_0"),
            keras.layers.ReLU(),
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(filters, 4, 2, name="stem_conv_1"),
            norm("stem_norm_1"), keras.layers.ReLU(),
            keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(filters, 4, 2, name="stem_conv_2"),
        ]
        self.head = [norm("head_norm"), keras.layers.ReLU(),
                     keras.layers.GlobalAveragePooling2D(),
                     keras.layers.Dense(num_classes, name="logits")]

    def body(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        """The continuous-depth part, on the stem's feature maps."""
        raise NotImplementedError(f"{type(self).__name__} must implement body(h, training).")

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        name = type(self).__name__
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} expects images of shape [N, "
                             f"{', '.join(map(str, self.image_shape))}], got {images.shape}.")
        if not images.dtype.is_floating:
            raise TypeError(f"Images must be float32 raw pixel values 0–255, got "
                            f"{images.dtype.name}; cast them with tf.cast(x, tf.float32).")
        images = tf.debugging.assert_all_finite(
            images, f"{name}: images contain NaN or inf; expected raw pixels 0–255.")
        h = tf.cast(images, self.compute_dtype) / 255.0
        for layer in self.stem:
            h = layer(h)
        h = self.body(h, training=training)
        for layer in self.head:
            h = layer(h)
        return h

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_classes=self.num_classes, image_shape=list(self.image_shape),
                      filters=self.filters, groups=self.groups)
        return config
