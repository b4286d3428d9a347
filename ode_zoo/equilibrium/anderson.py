"""Anderson acceleration (type II) with memory m, regularization λ and damping β.

Keeps the last m iterates xᵢ and their images f(xᵢ) per batch element, with
residuals gᵢ = f(xᵢ) − xᵢ, and finds weights α (Σ αᵢ = 1) minimizing
‖Σ αᵢ gᵢ‖² + λ s ‖α‖², where s is the mean of the ‖gᵢ‖² (so λ is relative to
the residuals' scale and keeps working as they shrink). The next iterate is
β Σ αᵢ f(xᵢ) + (1 − β) Σ αᵢ xᵢ. The constrained least-squares problem is solved
as a bordered linear system; λ (plus a floor of machine epsilon) keeps it
non-singular when the history is degenerate (e.g. f constant), and a solve that
still gives non-finite values falls back to the damped Picard step.

Example:
    >>> import tensorflow as tf
    >>> anderson, z = Anderson(memory=3), tf.zeros([1, 2])
    >>> state = anderson.init(z, tf.ones([1, 2]))         # f ≡ 1: one Picard step
    >>> anderson.propose(z, tf.ones([1, 2]), state).numpy()
    array([[1., 1.]], dtype=float32)
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf

from ode_zoo.equilibrium.batch import row_finite, where_rows


def _push(buffer: tf.Tensor, count: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Write x [batch, n] into ring-buffer slot count % memory of buffer [batch, memory, n]."""
    memory = buffer.shape[1]
    slot = tf.one_hot(count % memory, memory, on_value=True, off_value=False)
    return tf.where(slot[:, :, None], x[:, None, :], buffer)


@dataclasses.dataclass(frozen=True)
class Anderson:
    """Anderson acceleration; see the module docstring."""

    memory: int = 5
    regularization: float = 1e-4
    damping: float = 1.0

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(iterates, images, count) holding (z0, f(z0))."""
        zeros = tf.zeros([tf.shape(z)[0], self.memory, tf.shape(z)[1]], z.dtype)
        count = tf.zeros(tf.shape(z)[:1], tf.int32)
        return _push(zeros, count, z), _push(zeros, count, fz), count + 1

    def _weights(self, xs: tf.Tensor, fs: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        """α [batch, memory]: zero on empty slots, summing to one.

        The ridge keeps the system away from exact singularity (where the solve
        would raise eagerly and return garbage under XLA); NaN or inf in the
        history (overflow) give NaN weights, which `propose` replaces.
        """
        dtype, m = xs.dtype, self.memory
        valid = tf.cast(tf.range(m)[None, :] < count[:, None], dtype)
        g = (fs - xs) * valid[:, :, None]
        gram = tf.einsum("bin,bjn->bij", g, g)
        scale = tf.linalg.trace(gram) / tf.reduce_sum(valid, axis=-1)
        floor = np.finfo(dtype.as_numpy_dtype)
        ridge = (self.regularization + floor.eps) * scale + floor.tiny
        # Empty slots get a unit diagonal and no constraint entry, so their α is 0.
        gram += tf.linalg.diag(ridge[:, None] * valid + (1.0 - valid))
        border = tf.concat([tf.zeros_like(valid[:, :1]), valid], axis=-1)
        system = tf.concat([border[:, None, :],
                            tf.concat([valid[:, :, None], gram], axis=-1)], axis=1)
        rhs = tf.one_hot(tf.zeros_like(count), m + 1, dtype=dtype)[:, :, None]
        return tf.linalg.solve(system, rhs)[:, 1:, 0]

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: Tuple) -> tf.Tensor:
        """The extrapolated iterate, or the damped Picard step where it is not finite."""
        xs, fs, count = state
        alpha = self._weights(xs, fs, count)
        mixed = self.damping * tf.einsum("bm,bmn->bn", alpha, fs) + \
            (1.0 - self.damping) * tf.einsum("bm,bmn->bn", alpha, xs)
        picard = (1.0 - self.damping) * z + self.damping * fz
        return where_rows(row_finite(mixed), mixed, picard)

    def update(self, state: Tuple, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor) -> Tuple:
        """Add (z_new, f(z_new)) to the history, overwriting the oldest entry."""
        xs, fs, count = state
        return _push(xs, count, z_new), _push(fs, count, fz_new), count + 1
