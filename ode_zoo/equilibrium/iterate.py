"""The fixed-point loop shared by all methods: one `tf.while_loop` over a flat
[batch, n] state in which every batch element stops on its own.

A method (`FixedPointMethod`) proposes the next iterate from the current one
and its own state, and updates that state once f has been evaluated there.
Each iteration evaluates f once on the whole batch; elements that
have converged (or met a non-finite residual) keep their iterate: f sees the
same row again, so their residual, and the best iterate, stay as they were
(their method state may still change, it is never used again).
Nothing is raised inside the loop, so it runs eagerly, in `tf.function` and
under XLA; it ends when every element is done or after `max_iter` iterations.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.equilibrium.picard import Picard
    >>> result = iterate(lambda z: 0.5 * z + 1.0, Picard(), tf.zeros([2, 3]), tol=1e-6,
    ...                  max_iter=100, stop_mode="abs")
    >>> round(float(result.z[0, 0]), 4), bool(result.converged[1])
    (2.0, True)
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import tensorflow as tf

from ode_zoo.equilibrium.batch import where_rows
from ode_zoo.equilibrium.result import FixedPointResult, residual_norms


class FixedPointMethod(Protocol):
    """One fixed-point method on flat [batch, n] iterates (`Picard`, `Anderson`,
    `Broyden`); its state is a tuple of tensors."""

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> Any:
        """The state before the first step, from z0 and f(z0)."""

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: Any) -> tf.Tensor:
        """The next iterate."""

    def update(self, state: Any, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor) -> Any:
        """The state after the step z → z_new, given f at both ends."""


def iterate(f: Callable[[tf.Tensor], tf.Tensor], method: FixedPointMethod, z0: tf.Tensor, *,
            tol: float, max_iter: int, stop_mode: str) -> FixedPointResult:
    """Find z = f(z) for a flat z0 [batch, n] and f mapping [batch, n] to itself.

    `stop_mode` "rel" stops an element when ‖f(z) − z‖ / ‖f(z)‖ <= tol, "abs"
    when ‖f(z) − z‖ <= tol. The reported iterate is the one with the smallest
    stopping residual seen (the converged one, for a converged element).
    """

    def measure(z, fz):
        abs_residual, rel_residual = residual_norms(z, fz)
        criterion = rel_residual if stop_mode == "rel" else abs_residual
        return abs_residual, rel_residual, criterion

    def finished(criterion):
        return (criterion <= tol) | tf.logical_not(tf.math.is_finite(criterion))

    def cond(k, z, fz, state, steps, best, done):
        return tf.reduce_any(tf.logical_not(done))

    def body(k, z, fz, state, steps, best, done):
        active = tf.logical_not(done)
        z_new = where_rows(active, method.propose(z, fz, state), z)
        fz_new = f(z_new)
        state = method.update(state, z, fz, z_new, fz_new)
        abs_residual, rel_residual, criterion = measure(z_new, fz_new)
        better = criterion < best[3]
        best = tuple(where_rows(better, new, old) for new, old in
                     zip((z_new, abs_residual, rel_residual, criterion), best))
        done = done | finished(criterion)
        steps = steps + tf.cast(active, tf.int32)
        return k + 1, z_new, fz_new, state, steps, best, done

    fz0 = f(z0)
    abs0, rel0, criterion0 = measure(z0, fz0)
    steps0 = tf.zeros(tf.shape(z0)[:1], tf.int32)
    k, _, _, _, steps, best, _ = tf.while_loop(
        cond, body,
        (tf.constant(0), z0, fz0, method.init(z0, fz0), steps0, (z0, abs0, rel0, criterion0),
         finished(criterion0)),
        maximum_iterations=max_iter)
    z, abs_residual, rel_residual, criterion = best
    return FixedPointResult(z, steps, abs_residual, rel_residual, criterion <= tol, k + 1)
