"""The fixed-point loop shared by all methods: one `tf.while_loop` over a flat
[batch, n] state in which every batch element stops on its own.

A method (`FixedPointMethod`) proposes the next iterate from the current one
and its own state, and updates that state once f has been evaluated there.
Each iteration evaluates f once on the whole batch; elements that
have converged (or met a non-finite residual) keep their iterate: f sees the
same row again, so their residual, and the best iterate, stay as they were
(their method state may still change, it is never used again).

An accelerated method's limited memory can go bad on a slowly contracting f
(lose the slow directions, or blow up): an element whose stopping residual has
not improved for `PATIENCE` iterations, or has grown to `GROWTH` times its best,
restarts: it goes back to its best iterate and the method forgets its history
there (`update`'s `restart`), so its next step is a damped Picard step. Elements
never stop early for this: they run until they converge, meet a non-finite
residual (f failed) or reach `max_iter`.
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

PATIENCE = 10   # iterations without a new best stopping residual before a restart
GROWTH = 10.0   # a step whose residual exceeds the best one this many times restarts


class FixedPointMethod(Protocol):
    """One fixed-point method on flat [batch, n] iterates (`Picard`, `Anderson`,
    `Broyden`); its state is a tuple of tensors."""

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> Any:
        """The state before the first step, from z0 and f(z0)."""

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: Any) -> tf.Tensor:
        """The next iterate."""

    restarts: bool
    """Whether `iterate` may restart the method (`update`'s `restart`)."""

    def update(self, state: Any, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor, restart: tf.Tensor) -> Any:
        """The state after the step z → z_new, given f at both ends; where `restart`
        [batch] is True, z_new is the best iterate instead and the method starts
        afresh from it (its next step a damped Picard step)."""


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

    def cond(k, z, fz, state, steps, best, stale, done):
        return tf.reduce_any(tf.logical_not(done))

    def body(k, z, fz, state, steps, best, stale, done):
        active = tf.logical_not(done)
        z_new = where_rows(active, method.propose(z, fz, state), z)
        fz_new = f(z_new)
        abs_residual, rel_residual, criterion = measure(z_new, fz_new)
        better = criterion < best[-1]
        # f at the best iterate is kept only for restarts (one select fewer for Picard).
        best = (where_rows(better, z_new, best[0]),
                where_rows(better, fz_new, best[1]) if method.restarts else best[1],
                *(tf.where(better, new, old) for new, old in
                  zip((abs_residual, rel_residual, criterion), best[2:])))
        stale = tf.where(better, 0, stale + 1)
        restart = tf.zeros_like(active)
        if method.restarts:
            restart = active & tf.math.is_finite(criterion) & (
                (stale >= PATIENCE) | (criterion > GROWTH * best[-1]))
            z_new, fz_new = tf.cond(  # rare: skip the two selects on most iterations
                tf.reduce_any(restart),
                lambda: tuple(where_rows(restart, b, new) for b, new in zip(best, (z_new, fz_new))),
                lambda: (z_new, fz_new))
        state = method.update(state, z, fz, z_new, fz_new, restart)
        done = done | finished(criterion)
        steps = steps + tf.cast(active, tf.int32)
        return k + 1, z_new, fz_new, state, steps, best, tf.where(restart, 0, stale), done

    fz0 = f(z0)
    abs0, rel0, criterion0 = measure(z0, fz0)
    zeros = tf.zeros(tf.shape(z0)[:1], tf.int32)
    k, _, _, _, steps, best, _, _ = tf.while_loop(
        cond, body,
        (tf.constant(0), z0, fz0, method.init(z0, fz0), zeros, (z0, fz0, abs0, rel0, criterion0),
         zeros, finished(criterion0)),
        maximum_iterations=max_iter)
    z, _, abs_residual, rel_residual, criterion = best
    return FixedPointResult(z, steps, abs_residual, rel_residual, criterion <= tol, k + 1)
