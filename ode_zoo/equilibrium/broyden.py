"""Limited-memory Broyden's method on g(z) = f(z) − z.

Keeps an estimate H of the inverse Jacobian of g per batch element,
H = −I + Σᵢ uᵢ vᵢᵀ, and steps z ← z − H g(z). After each step the "good"
Broyden update (Sherman–Morrison form) makes H satisfy the secant condition
H Δg = Δz: u = (Δz − H Δg) / (Δzᵀ H Δg), vᵀ = Δzᵀ H. The `memory` most recent
(u, v) pairs are kept in a ring buffer; each update replaces the oldest pair
(and is computed without it, so the secant condition holds exactly for the
latest step). The step direction H g is carried from one update to the next
(H_new g_new = H g_new + u (vᵀ g_new)), so an iteration makes four passes over
the pairs. An update whose denominator is numerically zero or NaN (a step
across a flat region of g, or onto a non-finite f) is skipped; an element whose
step is not finite (H blew up) forgets its pairs and takes a Picard step, as
after a restart (see `iterate`). Superlinear near a root; with memory >= 2n it
solves linear maps in at most 2n steps (in exact arithmetic), repelling ones
such as f(z) = 2z + 1 included.

Example:
    >>> import tensorflow as tf
    >>> broyden, z = Broyden(memory=4), tf.zeros([1, 2])
    >>> state = broyden.init(z, 2.0 * z + 1.0)
    >>> z1 = broyden.propose(z, 2.0 * z + 1.0, state)      # H = −I: a Picard step
    >>> state = broyden.update(state, z, 2.0 * z + 1.0, z1, 2.0 * z1 + 1.0, tf.constant([False]))
    >>> broyden.propose(z1, 2.0 * z1 + 1.0, state).numpy()   # the root, z = −1
    array([[-1., -1.]], dtype=float32)
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from ode_zoo.equilibrium import history
from ode_zoo.equilibrium.batch import row_finite, where_rows


class BroydenState(NamedTuple):
    """Pairs u, v [batch, memory, n], H g at the current iterate [batch, n], pairs
    written (scalar) and each element's first valid pair [batch]."""

    u: tf.Tensor
    v: tf.Tensor
    direction: tf.Tensor
    count: tf.Tensor
    start: tf.Tensor


def apply(u: tf.Tensor, v: tf.Tensor, weights: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """H x for H = −I + Σᵢ wᵢ uᵢ vᵢᵀ; u, v [batch, memory, n], weights [batch, memory]
    (1 for a pair in use, 0 for one that is not), x [batch, n]. Hᵀ x is
    apply(v, u, weights, x).

    Example:
        >>> import tensorflow as tf
        >>> u, v = tf.ones([1, 1, 2]), tf.constant([[[1.0, 0.0]]])
        >>> apply(u, v, tf.ones([1, 1]), tf.constant([[2.0, 3.0]])).numpy()
        array([[ 0., -1.]], dtype=float32)
    """
    return -x + tf.einsum("bmn,bm->bn", u, weights * tf.einsum("bmn,bn->bm", v, x))


@dataclasses.dataclass(frozen=True)
class Broyden:
    """Good Broyden with `memory` rank-one terms per batch element."""

    memory: int = 10
    restarts = True

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> BroydenState:
        """No pairs (H = −I), so the first step is a Picard step."""
        zeros = tf.zeros([tf.shape(z)[0], self.memory, tf.shape(z)[1]], z.dtype)
        return BroydenState(zeros, zeros, z - fz, tf.constant(0), tf.zeros(tf.shape(z)[:1], tf.int32))

    def weights(self, state: BroydenState) -> tf.Tensor:
        """[batch, memory]: 1 for the pairs that make up each element's H, else 0."""
        return tf.cast(history.valid(state.count, state.start, self.memory), state.u.dtype)

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: BroydenState) -> tf.Tensor:
        """z − H g(z)."""
        return z - state.direction

    def update(self, state: BroydenState, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor, restart: tf.Tensor) -> BroydenState:
        """Add the rank-one secant correction for the step z → z_new; where `restart`
        [batch] (or where the next step would not be finite), forget every pair."""
        u, v, direction, count, start = state
        slot = count % self.memory                   # the pair this update replaces
        weights = self.weights(state)
        kept = weights * (1.0 - tf.one_hot(slot, self.memory, dtype=u.dtype))
        u_old, v_old, used = (tf.gather(t, slot, axis=1) for t in (u, v, weights))
        g, g_new = fz - z, fz_new - z_new
        dz, dg = z_new - z, g_new - g
        # H' (H without its oldest pair) applied to g, g_new and, transposed, to dz.
        h_g = direction - u_old * (used * tf.reduce_sum(v_old * g, axis=-1))[:, None]
        h_g_new = apply(u, v, kept, g_new)
        v_new = apply(v, u, kept, dz)
        denominator = tf.reduce_sum(v_new * dg, axis=-1)
        eps = np.sqrt(np.finfo(z.dtype.as_numpy_dtype).eps)
        ok = tf.abs(denominator) > eps * tf.norm(v_new, axis=-1) * tf.norm(dg, axis=-1)
        u_new = (dz - (h_g_new - h_g)) / tf.where(ok, denominator, tf.ones_like(denominator))[:, None]
        u_new, v_new = where_rows(ok, u_new, 0.0), where_rows(ok, v_new, 0.0)
        direction = h_g_new + u_new * tf.reduce_sum(v_new * g_new, axis=-1, keepdims=True)
        forget = restart | tf.logical_not(row_finite(direction))
        return BroydenState(history.write(u, count, u_new), history.write(v, count, v_new),
                            where_rows(forget, -g_new, direction), count + 1,
                            tf.where(forget, count + 1, start))
