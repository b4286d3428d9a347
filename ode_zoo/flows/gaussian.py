"""`standard_normal_log_prob`: log N(z; 0, I) over the last axis — the base
density of every flow and the prior of every latent-variable model in the zoo.

Example:
    >>> import tensorflow as tf
    >>> round(float(standard_normal_log_prob(tf.zeros([1, 2]))[0]), 4)   # −log 2π
    -1.8379
"""
from __future__ import annotations

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: tf.Tensor) -> tf.Tensor:
    """log N(z; 0, I) summed over the last axis: shape z.shape[:-1]."""
    return -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)
