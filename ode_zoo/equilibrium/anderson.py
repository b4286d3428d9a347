"""Anderson acceleration (type II) with memory m, regularization λ and damping β.

Keeps the last m images fᵢ = f(xᵢ) and residuals gᵢ = fᵢ − xᵢ per batch
element, and finds weights α (Σ αᵢ = 1) minimizing ‖Σ αᵢ gᵢ‖² + λ s ‖α‖², where
s is the mean of the ‖gᵢ‖² (so λ is relative to the residuals' scale and keeps
working as they shrink): α ∝ (GᵀG + λ s I)⁻¹ 1. The next iterate is
β Σ αᵢ fᵢ + (1 − β) Σ αᵢ xᵢ = Σ αᵢ fᵢ − (1 − β) Σ αᵢ gᵢ. The Gram matrix GᵀG is
updated by one row per iteration (one pass over the history), never recomputed.
λ (plus a floor of machine epsilon) keeps the m×m system non-singular when the
history is degenerate (e.g. f constant); a solve that still gives non-finite
weights falls back to the damped Picard step, and so does an element whose
history was cleared by a restart (see `iterate`).

Example:
    >>> import tensorflow as tf
    >>> anderson, z = Anderson(memory=3), tf.zeros([1, 2])
    >>> state = anderson.init(z, tf.ones([1, 2]))         # f ≡ 1: one Picard step
    >>> anderson.propose(z, tf.ones([1, 2]), state).numpy()
    array([[1., 1.]], dtype=float32)
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Tuple

import numpy as np
import tensorflow as tf

from ode_zoo.equilibrium import history
from ode_zoo.equilibrium.batch import row_finite, where_rows
from ode_zoo.equilibrium.picard import Picard


class AndersonState(NamedTuple):
    """Images and residuals [batch, memory, n], their Gram matrix [batch, memory,
    memory], entries written (scalar) and each element's first valid entry [batch]."""

    images: tf.Tensor
    residuals: tf.Tensor
    gram: tf.Tensor
    count: tf.Tensor
    start: tf.Tensor


def solve_spd(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """x with a x = b for symmetric positive definite a [batch, m, m], b [batch, m]:
    Cholesky, unrolled over the static m (small: Anderson's memory). XLA fuses it into a
    few loops, where its batched `tf.linalg.solve` took as long as f on a dense cell;
    and a matrix that is not positive definite gives NaN instead of raising.

    Example:
        >>> import tensorflow as tf
        >>> solve_spd(tf.constant([[[4.0, 2.0], [2.0, 3.0]]]), tf.constant([[2.0, 1.0]])).numpy()
        array([[0.5, 0. ]], dtype=float32)
    """
    m = a.shape[-1]
    columns = []                       # columns of the factor L (a = L Lᵀ), zero above
    for j in range(m):
        c = a[:, :, j] - sum(col * col[:, j:j + 1] for col in columns)
        below = tf.constant([i >= j for i in range(m)])
        columns.append(tf.where(below, c / tf.sqrt(c[:, j:j + 1]), 0.0))
    y = []                             # L y = b
    for j in range(m):
        y.append((b[:, j] - sum(columns[k][:, j] * y[k] for k in range(j))) / columns[j][:, j])
    x = [None] * m                     # Lᵀ x = y
    for j in reversed(range(m)):
        x[j] = (y[j] - sum(columns[j][:, k] * x[k] for k in range(j + 1, m))) / columns[j][:, j]
    return tf.stack(x, axis=-1)


@dataclasses.dataclass(frozen=True)
class Anderson:
    """Anderson acceleration; see the module docstring."""

    memory: int = 5
    regularization: float = 1e-4
    damping: float = 1.0
    restarts = True

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> AndersonState:
        """The history holding (z0, f(z0))."""
        batch, m = tf.shape(z)[0], self.memory
        zeros = tf.zeros([batch, m, tf.shape(z)[1]], z.dtype)
        empty = AndersonState(zeros, zeros, tf.zeros([batch, m, m], z.dtype), tf.constant(0),
                              tf.zeros([batch], tf.int32))
        return self._add(empty, z, fz)

    def _add(self, state: AndersonState, z: tf.Tensor, fz: tf.Tensor) -> AndersonState:
        """Write (f(z), f(z) − z) into the oldest slot and its row into the Gram matrix."""
        images, residuals, gram, count, start = state
        g = fz - z
        slot = tf.one_hot(count % self.memory, self.memory, on_value=True, off_value=False)
        row = tf.einsum("bmn,bn->bm", residuals, g)
        row = tf.where(slot[None, :], tf.reduce_sum(g * g, axis=-1)[:, None], row)
        gram = tf.where(slot[None, :, None], row[:, None, :], gram)
        gram = tf.where(slot[None, None, :], row[:, :, None], gram)
        return AndersonState(history.write(images, count, fz), history.write(residuals, count, g),
                             gram, count + 1, start)

    def _weights(self, state: AndersonState) -> Tuple[tf.Tensor, tf.Tensor]:
        """(α [batch, memory], usable [batch]): α is zero on invalid slots and sums to
        one; it is not usable (and zero) where the history overflowed to inf or NaN
        (the Cholesky factorization then gives NaN: nothing raises)."""
        dtype = state.gram.dtype
        valid = tf.cast(history.valid(state.count, state.start, self.memory), dtype)
        pair = valid[:, :, None] * valid[:, None, :]
        scale = tf.linalg.trace(state.gram * pair) / tf.reduce_sum(valid, axis=-1)
        floor = np.finfo(dtype.as_numpy_dtype)
        ridge = (self.regularization + floor.eps) * scale + floor.tiny
        # Invalid slots get a unit diagonal and a zero right-hand side, so their α is 0.
        system = state.gram * pair + tf.linalg.diag(ridge[:, None] * valid + (1.0 - valid))
        y = solve_spd(system, valid)
        alpha = y / tf.reduce_sum(y, axis=-1, keepdims=True)
        usable = row_finite(alpha)
        return where_rows(usable, alpha, 0.0), usable

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: AndersonState) -> tf.Tensor:
        """The extrapolated iterate, or the damped Picard step where it is not finite."""
        alpha, usable = self._weights(state)
        mixed = tf.einsum("bm,bmn->bn", alpha, state.images)
        if self.damping != 1.0:
            mixed -= (1.0 - self.damping) * tf.einsum("bm,bmn->bn", alpha, state.residuals)
        return where_rows(usable, mixed, Picard(self.damping).propose(z, fz, ()))

    def update(self, state: AndersonState, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor, restart: tf.Tensor) -> AndersonState:
        """Add (z_new, f(z_new)); where `restart` [batch], forget all but it."""
        state = self._add(state, z_new, fz_new)
        return state._replace(start=tf.where(restart, state.count - 1, state.start))
