"""Per-sample helpers for [batch, ...] tensors: each batch element (row) is
updated, checked and frozen on its own.

Example:
    >>> import tensorflow as tf
    >>> x = tf.constant([[1.0, float("nan")], [2.0, 3.0]])
    >>> row_finite(x).numpy()
    array([False,  True])
    >>> where_rows(row_finite(x), x, tf.zeros_like(x)).numpy()
    array([[0., 0.],
           [2., 3.]], dtype=float32)
"""
from __future__ import annotations

import tensorflow as tf


def row_finite(x: tf.Tensor) -> tf.Tensor:
    """bool [batch]: every entry of the row is finite."""
    return tf.reduce_all(tf.math.is_finite(tf.reshape(x, [tf.shape(x)[0], -1])), axis=-1)


def where_rows(mask: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """`x` in the rows where `mask` [batch] is True, `y` elsewhere (any rank)."""
    return tf.where(tf.reshape(mask, [-1] + [1] * (x.shape.rank - 1)), x, y)
