"""Limited-memory Broyden's method on g(z) = f(z) − z.

Keeps an estimate H of the inverse Jacobian of g per batch element,
H = −I + Σᵢ uᵢ vᵢᵀ, and steps z ← z − H g(z). After each step the "good"
Broyden update (Sherman–Morrison form) makes H satisfy the secant condition
H Δg = Δz: u = (Δz − H Δg) / (Δzᵀ H Δg), vᵀ = Δzᵀ H. The `memory` most recent
(u, v) pairs are kept in a ring buffer; once it is full, each update replaces
the oldest pair (and is computed without it, so the secant condition still
holds exactly for the latest step). An update whose denominator is
numerically zero or NaN (a step across a flat region of g, or onto a
non-finite f) is skipped. Superlinear near a root; with memory >= 2n it solves
linear maps in at most 2n steps (in exact arithmetic), repelling ones such as
f(z) = 2z + 1 included.

Example:
    >>> import tensorflow as tf
    >>> broyden, z = Broyden(memory=4), tf.zeros([1, 2])
    >>> state = broyden.init(z, 2.0 * z + 1.0)
    >>> z1 = broyden.propose(z, 2.0 * z + 1.0, state)      # H = −I: a Picard step
    >>> state = broyden.update(state, z, 2.0 * z + 1.0, z1, 2.0 * z1 + 1.0)
    >>> broyden.propose(z1, 2.0 * z1 + 1.0, state).numpy()   # the root, z = −1
    array([[-1., -1.]], dtype=float32)
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf


def _apply(u: tf.Tensor, v: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """H x for H = −I + Σ uᵢ vᵢᵀ; u, v [batch, memory, n], x [batch, n]."""
    return -x + tf.einsum("bmn,bm->bn", u, tf.einsum("bmn,bn->bm", v, x))


def _apply_transposed(u: tf.Tensor, v: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Hᵀ x (the row vector xᵀ H, as a column)."""
    return _apply(v, u, x)


@dataclasses.dataclass(frozen=True)
class Broyden:
    """Good Broyden with `memory` rank-one terms per batch element."""

    memory: int = 20

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(u, v, number of updates): empty buffers, so H = −I."""
        zeros = tf.zeros([tf.shape(z)[0], self.memory, tf.shape(z)[1]], z.dtype)
        return zeros, zeros, tf.zeros(tf.shape(z)[:1], tf.int32)

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: Tuple) -> tf.Tensor:
        """z − H g(z)."""
        u, v, _ = state
        return z - _apply(u, v, fz - z)

    def update(self, state: Tuple, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor) -> Tuple:
        """Add the rank-one secant correction for the step z → z_new."""
        u, v, count = state
        slot = tf.one_hot(count % self.memory, self.memory, on_value=True,
                          off_value=False)[:, :, None]
        # The update is made to H without its oldest term, which it replaces, so
        # the new H satisfies the secant condition exactly.
        u_kept, v_kept = tf.where(slot, tf.zeros_like(u), u), tf.where(slot, tf.zeros_like(v), v)
        dz = z_new - z
        dg = (fz_new - z_new) - (fz - z)
        h_dg = _apply(u_kept, v_kept, dg)
        v_new = _apply_transposed(u_kept, v_kept, dz)
        denominator = tf.reduce_sum(v_new * dg, axis=-1)
        eps = np.sqrt(np.finfo(z.dtype.as_numpy_dtype).eps)
        ok = tf.abs(denominator) > eps * tf.norm(v_new, axis=-1) * tf.norm(dg, axis=-1)
        u_new = (dz - h_dg) / tf.where(ok, denominator, tf.ones_like(denominator))[:, None]
        write = slot & ok[:, None, None]
        return (tf.where(write, u_new[:, None, :], u), tf.where(write, v_new[:, None, :], v),
                count + tf.cast(ok, tf.int32))
