"""Adaptive integration with an embedded Runge–Kutta pair: PI step-size
control, an automatic first step, and dense output at the requested times
(steps are never shortened to land on them, only on the final time).

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.tableaus import DOPRI5
    >>> t = tf.constant([0.0, 0.5, 1.0], tf.float64)
    >>> ys, stats, _, _ = solve_adaptive(lambda t, y: -y, DOPRI5, tf.ones([1], tf.float64), t,
    ...                               rtol=1e-8, atol=1e-8, mask=None, max_num_steps=1000,
    ...                               min_step_size=0.0)
    >>> round(float(ys[-1, 0]), 7)
    0.3678794
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from ode_zoo.solvers.errors import Status
from ode_zoo.solvers.interpolation import dense_output
from ode_zoo.solvers.outputs import finish_outputs, new_outputs
from ode_zoo.solvers.runge_kutta import RKStep, rk_step
from ode_zoo.solvers.stats import SolveStats
from ode_zoo.solvers.step_control import error_norm, initial_step, reaches_end, step_factor
from ode_zoo.solvers.tableaus import ButcherTableau


def _write_outputs(t: tf.Tensor, idx: tf.Tensor, buf: tf.TensorArray, accept: tf.Tensor,
                   t0: tf.Tensor, h: tf.Tensor, t1: tf.Tensor, y0: tf.Tensor, step: RKStep,
                   tableau: ButcherTableau):
    """Write the dense output at every t[idx:] inside the accepted step [t0, t1]."""
    num_outputs = tf.shape(t)[0]

    def cond(i, _):
        return accept & (i < num_outputs) & (t[tf.minimum(i, num_outputs - 1)] <= t1)

    def body(i, b):
        theta = (t[i] - t0) / h
        y = dense_output(theta, y0, h, step.stages, tableau.dense)
        return i + 1, b.write(i, tf.where(tf.equal(t[i], t1), step.y1, y))

    return tf.while_loop(cond, body, (idx, buf), maximum_iterations=num_outputs)


def solve_adaptive(f: Callable, tableau: ButcherTableau, y0: tf.Tensor, t: tf.Tensor, *,
                   rtol: float, atol: float, mask: Optional[tf.Tensor], max_num_steps: int,
                   min_step_size: float, first_step: Optional[tf.Tensor] = None):
    """Integrate over increasing `t` with error control.

    When the error estimate allows the rest of the interval in one step, the
    next step goes to the end (`reaches_end`) rather than the PI controller's
    shorter step followed by a short last one.

    The first step is `first_step` when given (e.g. the step size a previous solve
    ended with), else Hairer's starting step, which costs one evaluation.

    Returns (outputs [len(t), n], SolveStats, the step size the controller
    proposes after the last step, f(t[0], y0)). Ends with status MAX_STEPS after
    `max_num_steps` trial steps, STEP_TOO_SMALL when a step of the minimum size
    max(min_step_size, 4·eps·max|t|) is rejected (NON_FINITE if NaN/inf caused
    it); steps never go below that size. Outputs not reached are NaN.
    """
    if not (tableau.fsal and tableau.dense):
        raise ValueError(f"{tableau.name} has no dense output; it cannot run adaptively.")
    dtype = y0.dtype
    num_outputs = tf.shape(t)[0]
    t_start, t_end = t[0], t[-1]
    resolution = 4.0 * np.finfo(dtype.as_numpy_dtype).eps * tf.maximum(
        tf.abs(t_start), tf.abs(t_end))
    floor = tf.maximum(tf.cast(min_step_size, dtype), resolution)

    def cond(t0, y, f_y, h, prev_norm, idx, buf, accepted, rejected, status):
        return (idx < num_outputs) & tf.equal(status, Status.SUCCESS) & (
            accepted + rejected < max_num_steps)

    def body(t0, y, f_y, h, prev_norm, idx, buf, accepted, rejected, status):
        last = h >= t_end - t0
        h = tf.minimum(h, t_end - t0)
        t1 = tf.where(last, t_end, t0 + h)
        step = rk_step(f, tableau, t0, y, f_y, h)
        norm = error_norm(step.error, y, step.y1, rtol, atol, mask)
        finite = tf.math.is_finite(norm) & tf.reduce_all(tf.math.is_finite(step.y1))
        accept = (norm <= 1.0) & finite
        idx, buf = _write_outputs(t, idx, buf, accept, t0, h, t1, y, step, tableau)
        h_next = tf.maximum(h * step_factor(tf.where(finite, norm, np.inf), prev_norm,
                                            tableau.error_order), floor)
        stretch = accept & reaches_end(h, norm, t_end - t1, tableau.error_order)
        h_next = tf.where(stretch, tf.maximum(h_next, t_end - t1), h_next)
        stuck = ~accept & ~(h > floor)  # rejected at the floor; a NaN step is stuck too
        status = tf.where(stuck, tf.where(finite, Status.STEP_TOO_SMALL, Status.NON_FINITE),
                          status)
        return (tf.where(accept, t1, t0), tf.where(accept, step.y1, y),
                tf.where(accept, step.f1, f_y), h_next,
                tf.where(accept, norm, prev_norm), idx, buf,
                accepted + tf.cast(accept, tf.int32), rejected + tf.cast(~accept, tf.int32),
                status)

    first_step_given = first_step is not None
    f_y0 = f(t_start, y0)
    if first_step is None:
        first_step = initial_step(f, t_start, y0, f_y0, tableau.order, rtol, atol, mask)
    h0 = tf.minimum(tf.maximum(tf.cast(first_step, dtype), floor), t_end - t_start)
    zero = tf.constant(0, tf.int32)
    _, _, _, h_next, _, idx, buf, accepted, rejected, status = tf.while_loop(
        cond, body,
        (t_start, y0, f_y0, h0, tf.constant(1.0, dtype), tf.constant(1, tf.int32),
         new_outputs(y0, num_outputs), zero, zero, tf.constant(0, tf.int32)),
        maximum_iterations=max_num_steps)
    status = tf.where(tf.equal(status, Status.SUCCESS) & (idx < num_outputs),
                      Status.MAX_STEPS, status)
    outputs = finish_outputs(buf, y0, idx, num_outputs)
    start_evals = 1 if first_step_given else 2   # f(t0, y0), and the starting-step probe
    evals = start_evals + (accepted + rejected) * (tableau.num_stages - 1)
    return outputs, SolveStats(evals, accepted, rejected, status), h_next, f_y0
