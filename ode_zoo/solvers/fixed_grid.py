"""Fixed-step integration: every output interval is cut into a whole number of
equal steps no longer than the requested step size, so output times are hit
exactly without interpolation.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.tableaus import RK4
    >>> t = tf.constant([0.0, 1.0])
    >>> counts = steps_per_interval(t, step_size=0.1, num_steps=None)
    >>> ys, stats, _ = solve_fixed(lambda t, y: -y, RK4, tf.ones([1]), t, counts, 100)
    >>> round(float(ys[-1, 0]), 5), int(stats.num_accepted_steps)
    (0.36788, 10)
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from ode_zoo.solvers.errors import Status
from ode_zoo.solvers.outputs import finish_outputs, new_outputs
from ode_zoo.solvers.runge_kutta import rk_step
from ode_zoo.solvers.stats import SolveStats
from ode_zoo.solvers.tableaus import ButcherTableau

_ROUNDING_SLACK = 1e-6  # an interval of 3.0000001 steps is 3 steps, not 4


def steps_per_interval(t: tf.Tensor, step_size: Optional[float],
                       num_steps: Optional[int]) -> tf.Tensor:
    """Number of equal steps in each interval of `t` (int32, length len(t)-1).

    With `num_steps`, the step size is |t[-1] - t[0]| / num_steps. Computed in
    numpy when `t` is known at trace time, so the total is static (XLA needs a
    static trip count to differentiate through the loop).
    """
    static_t = tf.get_static_value(t)
    if static_t is not None:
        t, xp = np.asarray(static_t, np.float64), np
    else:
        xp = tf.math
    h = step_size if step_size is not None else xp.abs(t[-1] - t[0]) / num_steps
    counts = xp.maximum(xp.ceil(xp.abs(t[1:] - t[:-1]) / h - _ROUNDING_SLACK), 1)
    if static_t is not None:
        return tf.constant(counts.astype(np.int32))
    return tf.cast(counts, tf.int32)


def solve_fixed(f: Callable, tableau: ButcherTableau, y0: tf.Tensor, t: tf.Tensor,
                counts: tf.Tensor, max_num_steps: int):
    """Integrate over increasing `t` with `counts[i]` steps in interval i.

    Returns (outputs [len(t), n], SolveStats, f(t[0], y0) for FSAL methods,
    which evaluate it before the loop, else None). The loop stops early with
    status NON_FINITE when the state becomes NaN/inf, or MAX_STEPS when the grid
    needs more than `max_num_steps` steps; outputs not reached are NaN.
    """
    num_outputs = tf.shape(t)[0]
    # A graph's reduce_sum has no static value even of constant counts: sum them here,
    # so XLA sizes the loop's buffers for the grid's steps, not for max_num_steps.
    static_counts = tf.get_static_value(counts)
    limit = (max_num_steps if static_counts is None
             else int(min(np.sum(static_counts), max_num_steps)))
    evals_per_step = tableau.num_stages - (1 if tableau.fsal else 0)

    def cond(k, i, j, y, f_y, buf, status):
        return (i < num_outputs - 1) & tf.equal(status, Status.SUCCESS) & (k < max_num_steps)

    def body(k, i, j, y, f_y, buf, status):
        h = (t[i + 1] - t[i]) / tf.cast(counts[i], y.dtype)
        t_k = t[i] + tf.cast(j, y.dtype) * h
        f0 = f_y if tableau.fsal else f(t_k, y)
        step = rk_step(f, tableau, t_k, y, f0, h)
        interval_done = tf.equal(j + 1, counts[i])
        buf = tf.cond(interval_done, lambda: buf.write(i + 1, step.y1), lambda: buf)
        finite = tf.reduce_all(tf.math.is_finite(step.y1))
        status = tf.where(finite, status, Status.NON_FINITE)
        i_next = tf.where(interval_done, i + 1, i)
        j_next = tf.where(interval_done, 0, j + 1)
        f_next = step.f1 if tableau.fsal else f_y
        return k + 1, i_next, j_next, step.y1, f_next, buf, status

    f_y0 = f(t[0], y0) if tableau.fsal else tf.zeros_like(y0)
    zero = tf.constant(0, tf.int32)
    k, i, _, _, _, buf, status = tf.while_loop(
        cond, body,
        (zero, zero, zero, y0, f_y0, new_outputs(y0, num_outputs), tf.constant(0, tf.int32)),
        maximum_iterations=max(limit, 1))
    status = tf.where(tf.equal(status, Status.SUCCESS) & (i < num_outputs - 1),
                      Status.MAX_STEPS, status)
    outputs = finish_outputs(buf, y0, i + 1, num_outputs)
    evals = k * evals_per_step + (1 if tableau.fsal else 0)
    return outputs, SolveStats(evals, k, zero, status), f_y0 if tableau.fsal else None
