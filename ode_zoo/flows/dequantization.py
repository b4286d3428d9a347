"""Uniform dequantization of 8-bit images and its inverse, and bits per dimension.

A density model of continuous values gives discrete pixels x ∈ {0, …, 255} a
probability through uniform dequantization (Theis et al. 2016): with noise
v ~ U[0, 1)^D, u = (x + v) / 256 lies in [0, 1)^D, and for any density p on u

    log P(x) ≥ E_v[log p(u)] − D·log 256,

the −D·log 256 being the log-determinant of the scaling [0, 256) → [0, 1).
One noise draw gives one sample of the bound (what FFJORD and RNODE report).
`quantize` inverts the map: ⌊256·u⌋ is x again for every v in [0, 1).

Example:
    >>> import tensorflow as tf
    >>> u, log_det = uniform_dequantize(tf.constant([[0.0, 255.0]]), tf.constant([[0.5, 0.5]]))
    >>> u.numpy().tolist(), round(float(log_det[0]), 4)      # −2·log 256
    ([[0.001953125, 0.998046875]], -11.0904)
    >>> quantize(u).numpy().tolist()
    [[0.0, 255.0]]
"""
from __future__ import annotations

import math

import tensorflow as tf

NUM_LEVELS = 256
LOG_NUM_LEVELS = math.log(NUM_LEVELS)


def uniform_dequantize(pixels: tf.Tensor, noise: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """u = (pixels + noise) / 256 and the log-det of the scaling, −D·log 256 per example.

    Args:
      pixels: integer pixel values 0–255 stored as floats, shape [N, ...].
      noise: values in [0, 1) of the same shape and dtype (uniform for the bound).

    Returns:
      u of pixels' shape, and a [N] tensor (D = number of values per example).

    Example:
        >>> import tensorflow as tf
        >>> u, _ = uniform_dequantize(tf.fill([1, 2, 2, 1], 128.0), tf.zeros([1, 2, 2, 1]))
        >>> float(u[0, 0, 0, 0])
        0.5
    """
    dim = tf.cast(tf.reduce_prod(tf.shape(pixels)[1:]), pixels.dtype)
    log_det = tf.fill(tf.shape(pixels)[:1], -dim * LOG_NUM_LEVELS)
    return (pixels + noise) / NUM_LEVELS, log_det


def quantize(u: tf.Tensor) -> tf.Tensor:
    """Pixels ⌊256·u⌋ clipped to 0–255 (floats): the inverse of `uniform_dequantize`
    for u in [0, 1); values outside (numerical error of a flow's inverse) are clipped.

    Example:
        >>> import tensorflow as tf
        >>> quantize(tf.constant([-0.01, 0.5, 1.2])).numpy().tolist()
        [0.0, 128.0, 255.0]
    """
    return tf.clip_by_value(tf.floor(u * NUM_LEVELS), 0.0, NUM_LEVELS - 1.0)


def bits_per_dim(log_prob: tf.Tensor, num_dims: int) -> tf.Tensor:
    """−log_prob / (num_dims·ln 2): a log-probability in nats as bits per dimension.

    Example:
        >>> import math, tensorflow as tf
        >>> float(bits_per_dim(tf.constant(-784 * math.log(2.0)), 784))
        1.0
    """
    return -log_prob / (num_dims * math.log(2.0))
