"""`check_pixel_images`: the one input check of every zoo model that takes 8-bit
images as raw pixel values 0–255 stored as float32.

A batch is refused, with an error naming the expected scale, when it has the
wrong rank, shape or dtype, holds NaN or inf, lies outside [0, 255], is
evidently on another scale (every value within [0, 1] and some above 0: images
divided by 255), or — where `integers` is asked — holds fractions. Eagerly the
error is a `TypeError` (dtype), `ValueError` (shape) or `InvalidPixelsError`
(values: both a `ValueError` and a `tf.errors.InvalidArgumentError`); inside a
`tf.function` (`predict`, `fit`, a SavedModel) an `InvalidArgumentError` with the
same message (also for a shape a SavedModel signature lets through).

Example:
    >>> import tensorflow as tf
    >>> check_pixel_images(tf.fill([1, 2, 2, 1], 7.0), (2, 2, 1), "Model").shape
    TensorShape([1, 2, 2, 1])
    >>> check_pixel_images(tf.fill([1, 2, 2, 1], 0.5), (2, 2, 1), "Model")
    Traceback (most recent call last):
    ...
    ode_zoo.models.pixel_inputs.InvalidPixelsError: Model expects raw pixel values 0–255 stored as float32; got values in [0.5, 0.5]: the batch looks scaled to [0, 1] (multiply by 255).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from ode_zoo.models.batches import InvalidInputsError, assert_batch_shape


class InvalidPixelsError(InvalidInputsError):
    """Pixel values a model refuses (NaN, outside 0–255, scaled to [0, 1], fractions),
    raised eagerly; catch it as `ValueError` or, as inside `predict`,
    `tf.errors.InvalidArgumentError`."""


def _expected(image_shape: Sequence[int], leading: str) -> str:
    return f"[{leading}{', '.join(map(str, image_shape))}]"


def check_pixel_images(images: Any, image_shape: Sequence[int], name: str,
                       integers: bool = False, leading: str = "N, ") -> tf.Tensor:
    """`images` as a float32 tensor [N, *image_shape], or a clear error.

    Args:
      images: a batch of images (raw pixel values 0–255).
      image_shape: the shape of one image, e.g. (28, 28, 1).
      name: the model's name, for the message.
      integers: also refuse fractional values (models that dequantize pixels).
      leading: the leading axes as the message names them ("N, " or "N, T, ").
    """
    images = tf.convert_to_tensor(images)
    rank = len(leading.split(",")) - 1 + len(image_shape)
    expected = _expected(image_shape, leading)
    if not images.dtype.is_floating:
        raise TypeError(f"{name} expects float32 raw pixel values 0–255 of shape {expected}, got "
                        f"{images.dtype.name}; cast with tf.cast(x, tf.float32).")
    shape_message = f"{name} expects images of shape {expected}"
    if (images.shape.rank != rank
            or tuple(images.shape[rank - len(image_shape):]) != tuple(image_shape)):
        raise ValueError(f"{shape_message}, got {images.shape}.")
    free = (None,) * (rank - len(image_shape))
    images = tf.cast(assert_batch_shape(images, (*free, *image_shape), shape_message), tf.float32)
    message = (f"{name} expects integers 0–255 (raw pixel values) stored as float32"
               if integers else f"{name} expects raw pixel values 0–255 stored as float32")
    if tf.executing_eagerly():
        values = images.numpy()
        if not np.all(np.isfinite(values)):
            raise InvalidPixelsError(f"{message}; got NaN or inf.")
        if values.size == 0:
            return images
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 255:
            side = "below 0" if low < 0 else "above 255"
            raise InvalidPixelsError(f"{message}; got values {side} (in [{low:g}, {high:g}]).")
        if 0 < high <= 1:
            raise InvalidPixelsError(f"{message}; got values in [{low:g}, {high:g}]: the batch looks "
                             "scaled to [0, 1] (multiply by 255).")
        if integers and np.any(values != np.floor(values)):
            raise InvalidPixelsError(f"{message}; got fractional values (round them to integers).")
        return images
    def finite(x: tf.Tensor) -> tf.Operation:
        return tf.debugging.assert_all_finite(x, f"{message}; got NaN or inf.").op

    def unit_scale(x: tf.Tensor) -> tf.Operation:
        high = tf.reduce_max(x)               # −inf for an empty batch: passes
        return tf.debugging.Assert(tf.logical_not((high > 0) & (high <= 1)), [
            f"{message}; the batch looks scaled to [0, 1] (every value within [0, 1]): "
            "multiply by 255."])

    def in_range(x: tf.Tensor) -> tf.Operation:
        valid = tf.reduce_all((x >= 0) & (x <= 255))
        if integers:
            valid &= tf.reduce_all(tf.equal(x, tf.floor(x)))
        return tf.debugging.Assert(valid, [f"{message}; got values below 0 or above 255"
                                           + (" or with fractions." if integers else ".")])

    # Each check reads the output of the one before, so they run in this order and the
    # message names the likeliest cause.
    for check in (finite, unit_scale, in_range):
        with tf.control_dependencies([check(images)]):
            images = tf.identity(images)
    return images
