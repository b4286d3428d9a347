"""What a fixed-point solve returns: `FixedPointResult`, with one entry per batch
element, and the residual norms it reports.

Example:
    >>> import tensorflow as tf
    >>> abs_res, rel_res = residual_norms(tf.constant([[3.0, 0.0]]), tf.constant([[0.0, 4.0]]))
    >>> float(abs_res[0]), float(rel_res[0])
    (5.0, 1.25)
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np
import tensorflow as tf


class FixedPointResult(NamedTuple):
    """The outcome of `fixed_point`, per batch element (leading axis of z0).

    Attributes:
      z: the iterate with the smallest stopping residual seen, z0's shape.
      num_steps: int32 [batch], iterations this element took part in.
      abs_residual: [batch], ‖f(z) − z‖ (L2 over all non-batch axes) at `z`.
      rel_residual: [batch], ‖f(z) − z‖ / ‖f(z)‖ at `z` (0 where both are 0).
      converged: bool [batch], the stopping residual reached `tol`.
      num_evaluations: int32 scalar, calls of f on the whole batch (one per
        iteration plus the initial one).
    """

    z: tf.Tensor
    num_steps: tf.Tensor
    abs_residual: tf.Tensor
    rel_residual: tf.Tensor
    converged: tf.Tensor
    num_evaluations: tf.Tensor


def row_norm(x: tf.Tensor) -> tf.Tensor:
    """L2 norm of each row of x [batch, n]; rescaled (a second pass) only when a sum of
    squares overflows, so that it cannot."""
    plain = tf.norm(x, axis=-1)

    def rescaled() -> tf.Tensor:
        scale = tf.reduce_max(tf.abs(x), axis=-1)
        safe = tf.where(scale > 0, scale, tf.ones_like(scale))
        return tf.where(tf.math.is_inf(plain), scale * tf.norm(x / safe[:, None], axis=-1), plain)

    return tf.cond(tf.reduce_any(tf.math.is_inf(plain)), rescaled, lambda: plain)


def residual_norms(z: tf.Tensor, fz: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(‖f(z) − z‖, ‖f(z) − z‖ / ‖f(z)‖) per row of the flat [batch, n] tensors."""
    abs_residual = row_norm(fz - z)
    tiny = tf.constant(np.finfo(z.dtype.as_numpy_dtype).tiny, z.dtype)
    return abs_residual, abs_residual / (row_norm(fz) + tiny)
