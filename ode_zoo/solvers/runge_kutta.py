"""One explicit Runge–Kutta step for any `ButcherTableau`.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.tableaus import RK4
    >>> f = lambda t, y: -y
    >>> y0 = tf.constant([1.0])
    >>> step = rk_step(f, RK4, tf.constant(0.0), y0, f(0.0, y0), tf.constant(0.1))
    >>> round(float(step.y1[0]), 6)
    0.904837
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional

import tensorflow as tf

from ode_zoo.solvers.tableaus import ButcherTableau


class RKStep(NamedTuple):
    y1: tf.Tensor                  # the solution at t0 + h
    f1: Optional[tf.Tensor]        # f(t0 + h, y1) when the method is FSAL
    error: Optional[tf.Tensor]     # local error estimate, when the method has one
    stages: List[tf.Tensor]        # the stage derivatives k_i (for dense output)


def _combine(y: tf.Tensor, h: tf.Tensor, weights, stages) -> tf.Tensor:
    terms = [w * k for w, k in zip(weights, stages) if w != 0.0]
    return y + h * tf.add_n(terms) if terms else y


def rk_step(f: Callable, tableau: ButcherTableau, t0: tf.Tensor, y0: tf.Tensor,
            f0: tf.Tensor, h: tf.Tensor) -> RKStep:
    """Advance y0 from t0 by h; f0 = f(t0, y0) is supplied by the caller."""
    stages = [f0]
    for c_i, a_i in zip(tableau.c[1:], tableau.a[1:]):
        stages.append(f(t0 + c_i * h, _combine(y0, h, a_i, stages)))
    if tableau.fsal:
        y1 = _combine(y0, h, tableau.a[-1], stages[:-1])
        f1 = stages[-1]
    else:
        y1, f1 = _combine(y0, h, tableau.b, stages), None
    error = None if tableau.b_error is None else _combine(tf.zeros_like(y0), h, tableau.b_error,
                                                          stages)
    return RKStep(y1, f1, error, stages)
