"""The logit transform of dequantized images (Dinh et al. 2017) and its log-det.

u ∈ [0, 1) is squeezed away from the edges and mapped to the real line:

    s = α + (1 − 2α)·u,   y = log s − log(1 − s),
    log|dy/du| = Σ_d [log(1 − 2α) − log s_d − log(1 − s_d)]   (per example).

α = 1e-6 is FFJORD's choice (RNODE uses 1e-5, Real NVP 0.05): a smaller α keeps
the map closer to the plain logit, with logits of the dequantized 0-pixels in
about [−13.8, −5.5]. 1 − s is computed as α + (1 − 2α)·(1 − u) so pixels near
255 keep their precision in float32.

Example:
    >>> import tensorflow as tf
    >>> y, log_det = logit_transform(tf.constant([[0.5, 0.5]]), alpha=0.0)
    >>> y.numpy().tolist(), round(float(log_det[0]), 4)      # 2·log 4
    ([[0.0, 0.0]], 2.7726)
    >>> inverse_logit_transform(y, alpha=0.0).numpy().tolist()
    [[0.5, 0.5]]
"""
from __future__ import annotations

import math

import tensorflow as tf


def check_alpha(alpha: float) -> float:
    """`alpha` as a float, or a ValueError unless 0 ≤ alpha < 0.5.

    Example:
        >>> check_alpha(1e-6)
        1e-06
    """
    if not 0.0 <= float(alpha) < 0.5:
        raise ValueError(f"The logit transform's alpha must be in [0, 0.5), got {alpha}.")
    return float(alpha)


def logit_transform(u: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """y = logit(α + (1 − 2α)·u) for u [N, ...] in [0, 1), and log|det dy/du| per example [N].

    Example:
        >>> import tensorflow as tf
        >>> y, _ = logit_transform(tf.constant([[0.0]]), alpha=0.05)
        >>> round(float(y[0, 0]), 4)                   # logit(0.05)
        -2.9444
    """
    alpha = check_alpha(alpha)
    log_s = tf.math.log(alpha + (1.0 - 2.0 * alpha) * u)
    log_one_minus_s = tf.math.log(alpha + (1.0 - 2.0 * alpha) * (1.0 - u))
    y = log_s - log_one_minus_s
    per_value = math.log(1.0 - 2.0 * alpha) - log_s - log_one_minus_s
    log_det = tf.reduce_sum(tf.reshape(per_value, [tf.shape(u)[0], -1]), axis=1)
    return y, log_det


def inverse_logit_transform(y: tf.Tensor, alpha: float) -> tf.Tensor:
    """u = (sigmoid(y) − α) / (1 − 2α): the inverse of `logit_transform`.

    Example:
        >>> import tensorflow as tf
        >>> y, _ = logit_transform(tf.constant([[0.25]]), alpha=1e-6)
        >>> round(float(inverse_logit_transform(y, alpha=1e-6)[0, 0]), 6)
        0.25
    """
    alpha = check_alpha(alpha)
    return (tf.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)
