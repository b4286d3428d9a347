"""One solve on a packed state: picks the fixed-grid or adaptive loop and runs
it forward in time whichever way `t` points.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.tableaus import TABLEAUS
    >>> options = SolverOptions(TABLEAUS["rk4"], rtol=0.0, atol=0.0, step_size=0.01)
    >>> solution = solve_flat(lambda t, y: -y, tf.ones([1]), tf.constant([1.0, 0.0]), options)
    >>> round(float(solution.outputs[-1, 0]), 4)
    2.7183
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import tensorflow as tf

from ode_zoo.solvers.adaptive import solve_adaptive
from ode_zoo.solvers.fixed_grid import solve_fixed, steps_per_interval
from ode_zoo.solvers.stats import SolveStats
from ode_zoo.solvers.tableaus import ButcherTableau


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """How to solve: method, tolerances or fixed step, and the guards.

    `mask` (0/1 per packed entry) restricts the adaptive error norm;
    `first_step` replaces the adaptive starting-step heuristic.
    """

    tableau: ButcherTableau
    rtol: float = 1e-5
    atol: float = 1e-5
    step_size: Optional[float] = None
    num_steps: Optional[int] = None
    max_num_steps: int = 4096
    min_step_size: float = 0.0
    mask: Optional[tf.Tensor] = None
    first_step: Optional[tf.Tensor] = None

    @property
    def fixed_step(self) -> bool:
        return self.step_size is not None or self.num_steps is not None


class FlatSolution(NamedTuple):
    outputs: tf.Tensor               # the packed state at every time, [len(t), n]
    stats: SolveStats
    next_step: Optional[tf.Tensor]   # adaptive: the step size proposed at the end
    start_derivative: Optional[tf.Tensor]  # f(t[0], y0) when the solver evaluated it
    # (adaptive and FSAL methods do, before their loop); else None


def solve_flat(f: Callable, y0: tf.Tensor, t: tf.Tensor,
               options: SolverOptions) -> FlatSolution:
    """Solve dy/dt = f(t, y) for a packed state."""
    direction = tf.where(t[-1] >= t[0], tf.constant(1, t.dtype), tf.constant(-1, t.dtype))
    tau = direction * t

    def forward_in_tau(s, y):
        return direction * f(direction * s, y)

    if options.fixed_step:
        counts = steps_per_interval(t, options.step_size, options.num_steps)
        outputs, stats, f_y0 = solve_fixed(forward_in_tau, options.tableau, y0, tau, counts,
                                           options.max_num_steps)
        next_step = None
    else:
        outputs, stats, next_step, f_y0 = solve_adaptive(
            forward_in_tau, options.tableau, y0, tau, rtol=options.rtol, atol=options.atol,
            mask=options.mask, max_num_steps=options.max_num_steps,
            min_step_size=options.min_step_size, first_step=options.first_step)
    start_derivative = None if f_y0 is None else direction * f_y0
    return FlatSolution(outputs, stats, next_step, start_derivative)
