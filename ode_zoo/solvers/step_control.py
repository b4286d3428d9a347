"""Adaptive step-size control: the error norm, the starting step and the PI
controller that proposes the next step.

Example:
    >>> import tensorflow as tf
    >>> y = tf.constant([1.0, 2.0])
    >>> float(error_norm(tf.constant([1e-6, 2e-6]), y, y, rtol=1e-6, atol=0.0, mask=None))
    1.0
"""
from __future__ import annotations

from typing import Callable, Optional

import tensorflow as tf

SAFETY = 0.9
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
PI_BETA = 0.04  # Hairer & Wanner's memory coefficient for the PI controller.


def error_norm(error: tf.Tensor, y0: tf.Tensor, y1: tf.Tensor, rtol: float, atol: float,
               mask: Optional[tf.Tensor]) -> tf.Tensor:
    """Root-mean-square of the scaled error; a step is accepted when <= 1.

    `mask` (0/1 per entry) leaves entries out of the norm: the seminorm of the
    adjoint ignores the parameter-gradient channels this way. The norm of no
    entries (an empty state, such as a batch of no examples) is 0, not NaN.

    Example:
        >>> import tensorflow as tf
        >>> float(error_norm(tf.zeros([0, 2]), tf.zeros([0, 2]), tf.zeros([0, 2]),
        ...                  rtol=1e-5, atol=1e-5, mask=None))
        0.0
    """
    scale = atol + rtol * tf.maximum(tf.abs(y0), tf.abs(y1))
    ratio = tf.square(error / scale)
    if mask is None:
        mask = tf.ones_like(ratio)
    return tf.sqrt(tf.math.divide_no_nan(tf.reduce_sum(ratio * mask), tf.reduce_sum(mask)))


def initial_step(f: Callable, t0: tf.Tensor, y0: tf.Tensor, f0: tf.Tensor, order: int,
                 rtol: float, atol: float, mask: Optional[tf.Tensor]) -> tf.Tensor:
    """Hairer, Nørsett & Wanner's starting step (Solving ODEs I, II.4): one
    explicit Euler probe estimates the second derivative. Costs one evaluation."""
    dtype = y0.dtype
    zero = tf.zeros_like(y0)
    d0 = error_norm(y0, y0, zero, rtol, atol, mask)
    d1 = error_norm(f0, y0, zero, rtol, atol, mask)
    small = tf.logical_or(d0 < 1e-5, d1 < 1e-5)
    h0 = tf.where(small, tf.constant(1e-6, dtype), 0.01 * d0 / tf.where(small, tf.ones_like(d1), d1))
    f1 = f(t0 + h0, y0 + h0 * f0)
    d2 = error_norm(f1 - f0, y0, zero, rtol, atol, mask) / h0
    dmax = tf.maximum(d1, d2)
    h1 = tf.where(dmax <= 1e-15,
                  tf.maximum(tf.constant(1e-6, dtype), h0 * 1e-3),
                  (0.01 / tf.maximum(dmax, 1e-15)) ** (1.0 / (order + 1)))
    return tf.minimum(100.0 * h0, h1)


def step_factor(norm: tf.Tensor, previous_norm: tf.Tensor, error_order: int) -> tf.Tensor:
    """Factor for the next step from this step's error norm and the last
    accepted one's (PI control; Hairer & Wanner, Solving ODEs II, IV.2).

    A non-finite norm (NaN/inf in the trial step) gives the minimum factor.
    """
    k = float(error_order + 1)
    alpha = 1.0 / k - 0.75 * PI_BETA
    safe_norm = tf.maximum(norm, 1e-10)
    factor = SAFETY * safe_norm ** (-alpha) * tf.maximum(previous_norm, 1e-4) ** PI_BETA
    factor = tf.clip_by_value(factor, MIN_FACTOR, MAX_FACTOR)
    factor = tf.where(norm > 1.0, tf.minimum(factor, 1.0), factor)
    return tf.where(tf.math.is_finite(norm), factor, tf.cast(MIN_FACTOR, norm.dtype))


def reaches_end(h: tf.Tensor, norm: tf.Tensor, remaining: tf.Tensor,
                error_order: int) -> tf.Tensor:
    """Whether the step the error estimate alone allows after an accepted step
    (safety factor, no PI damping, growth clipped) covers the `remaining` time.

    The solver then stretches its next step to the end instead of taking the
    PI controller's smaller step and a short final one, which would cost a
    whole extra step.
    """
    factor = SAFETY * tf.maximum(norm, 1e-10) ** (-1.0 / float(error_order + 1))
    return h * tf.minimum(factor, MAX_FACTOR) >= remaining
