"""`ImageClassifier`: the classifier family — the frame the zoo's MNIST
classifiers share: input checks, a downsampling conv stem (28 → 6), a
continuous-depth body, a pooled linear head; and what the zoo asks of a
classifier: its serving endpoint `serving_default(images [None, H, W, C] raw
pixels 0–255) -> {"probabilities", "logits"}`, cross-entropy and accuracy as
compile defaults, the error rate as a derived metric, batches of (images, labels).

Subclasses build their body in `__init__` and implement `body(h, training)` and
`build_body(shape)` (create the body's weights for feature maps of that shape).

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.models import ODENetClassifier
    >>> isinstance(ODENetClassifier(filters=8, groups=4), ImageClassifier)
    True
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.models.batches import has_no_examples
from ode_zoo.models.base import Endpoint, ZooModel, spec
from ode_zoo.models.pixel_inputs import check_pixel_images


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

    family: ClassVar[str] = "classifier"
    labelled: ClassVar[bool] = True
    headline_metrics: ClassVar[Tuple[str, ...]] = ("test_accuracy", "test_forward_nfe")

    def body(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        """The continuous-depth part, on the stem's feature maps."""
        raise NotImplementedError(f"{type(self).__name__} must implement body(h, training).")

    def build_body(self, shape: Tuple) -> None:
        """Create the body's weights for the stem's feature maps of `shape`."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_body(shape).")

    def build(self, input_shape: Tuple) -> None:
        """Create every weight from the shapes alone (nothing is solved)."""
        shape = (None, *self.image_shape)
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.build_body(shape)
        for layer in self.head:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def build_variables(self) -> None:
        if not self.built:
            self.build((None, *self.image_shape))

    def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        images = check_pixel_images(images, self.image_shape, type(self).__name__)
        if has_no_examples(images):
            return tf.zeros([0, self.num_classes], self.compute_dtype)
        h = tf.cast(images, self.compute_dtype) / 255.0
        for layer in self.stem:
            h = layer(h)
        h = self.body(h, training=training)
        for layer in self.head:
            h = layer(h)
        return h

    def serving_endpoints(self) -> Dict[str, Endpoint]:
        def classify(images: tf.Tensor) -> Dict[str, tf.Tensor]:
            logits = self(images, training=False)
            return {"probabilities": tf.nn.softmax(logits), "logits": logits}
        return {"serving_default": Endpoint(spec("images", self.image_shape), classify)}

    def compile_defaults(self) -> Dict[str, Any]:
        return dict(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    def derived_metrics(self, metrics: Dict[str, float], split: str) -> Dict[str, float]:
        """The error rate, 1 − accuracy."""
        return {f"{split}_error": 1.0 - metrics[f"{split}_accuracy"]}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_classes=self.num_classes, image_shape=list(self.image_shape),
                      filters=self.filters, groups=self.groups)
        return config
