"""Squeeze: [N, H, W, C] ↔ [N, H/2, W/2, 4C], each 2×2 patch moved into channels
(Dinh et al. 2017). A permutation of the values: exactly invertible, log-det 0.

Example:
    >>> import tensorflow as tf
    >>> x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
    >>> squeeze(x).shape
    TensorShape([1, 2, 2, 4])
    >>> bool(tf.reduce_all(unsqueeze(squeeze(x)) == x))
    True
"""
from __future__ import annotations

import tensorflow as tf

FACTOR = 2


def squeeze(images: tf.Tensor) -> tf.Tensor:
    """[N, H, W, C] → [N, H/2, W/2, 4C]; H and W must be even.

    Example:
        >>> import tensorflow as tf
        >>> squeeze(tf.reshape(tf.range(4.0), [1, 2, 2, 1])).numpy().ravel().tolist()
        [0.0, 1.0, 2.0, 3.0]
    """
    if images.shape.rank != 4:
        raise ValueError(f"squeeze expects images of shape [N, H, W, C], got {images.shape}.")
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None or height % FACTOR or width % FACTOR:
        raise ValueError(f"squeeze needs a known, even height and width, got {images.shape}.")
    return tf.nn.space_to_depth(images, FACTOR)


def unsqueeze(images: tf.Tensor) -> tf.Tensor:
    """[N, H, W, 4C] → [N, 2H, 2W, C], the inverse of `squeeze`.

    Example:
        >>> import tensorflow as tf
        >>> unsqueeze(tf.zeros([3, 7, 7, 8])).shape
        TensorShape([3, 14, 14, 2])
    """
    if images.shape.rank != 4 or images.shape[-1] is None or images.shape[-1] % FACTOR ** 2:
        raise ValueError("unsqueeze expects images of shape [N, H, W, C] with C a multiple "
                         f"of {FACTOR ** 2}, got {images.shape}.")
    return tf.nn.depth_to_space(images, FACTOR)
