"""`odeint`: the one public entry point for solving ODEs."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from ode_zoo.solvers.adjoint import odeint_adjoint
from ode_zoo.solvers.errors import guard
from ode_zoo.solvers.fields import VectorField
from ode_zoo.solvers.solve import SolverOptions, solve_flat
from ode_zoo.solvers.solver import Solver, SolverLike
from ode_zoo.solvers.state import StatePacker
from ode_zoo.solvers.stats import StatsSink
from ode_zoo.solvers.tableaus import TABLEAUS

def _check_inputs(y0: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """Validate the packed y0 and the time grid; returns y0 (guarded in graph mode)."""
    if t.shape.rank != 1:
        raise ValueError(f"t must be a 1-D tensor of times, got shape {t.shape}.")
    if t.shape[0] == 0:
        raise ValueError("t must hold at least one time (the time of y0).")
    if tf.executing_eagerly():
        times = t.numpy()
        steps = np.diff(times)
        if not np.all(np.isfinite(times)):
            raise ValueError("t contains NaN or inf.")
        if steps.size and not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"t must be strictly increasing or strictly decreasing, got {times}.")
        if not np.all(np.isfinite(y0.numpy())):
            raise ValueError("y0 contains NaN or inf.")
        return y0
    steps = t[1:] - t[:-1]
    checks = [
        tf.debugging.assert_all_finite(t, "t contains NaN or inf."),
        tf.debugging.Assert(tf.reduce_all(steps > 0) | tf.reduce_all(steps < 0),
                            ["t must be strictly increasing or strictly decreasing."]),
        tf.debugging.assert_all_finite(y0, "y0 contains NaN or inf."),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(y0)


def odeint(func: Callable, y0: Any, t: Union[tf.Tensor, np.ndarray, list],
           solver: SolverLike = None, *, params: Optional[Sequence[tf.Tensor]] = None,
           return_stats: bool = False, backward_stats: Optional[StatsSink] = None,
           **options: Any):
    """Solve dy/dt = func(t, y) from y(t[0]) = y0 and return y at every time in `t`.

    Args:
      func: `func(t, y)` returning dy/dt with y's structure (a plain function or
        a `tf.Module` reading its own variables), or `func(t, y, params)` when
        `params` is given.
      y0: float tensor or nested structure (`tf.nest`) of tensors of one dtype.
      t: 1-D strictly increasing or decreasing output times; `t[0]` is y0's
        time. Cast to y0's dtype.
      solver: a `Solver` (or its config dict) with every setting of the solve;
        default `Solver()`: dopri5 at rtol = atol = 1e-5.
      params: the field's parameters as explicit tensors (as torchdiffeq's
        `adjoint_params` or diffrax's `args`): `func(t, y, params)` is evaluated
        on them and gradients reach them as inputs of the solve, also through the
        adjoint. A Keras layer's come from `ode_zoo.layers.KerasField`.
      **options: the `Solver` settings as keywords instead of `solver` (a
        shorthand; not both):
        method: "euler", "midpoint", "rk4" (3/8 rule) or one of the adaptive
          embedded pairs "bosh3", "dopri5", "tsit5". Any method runs on a fixed grid
          when `step_size` or `num_steps` is given.
        rtol, atol: error tolerances of adaptive steps.
        step_size: fixed-grid step bound; each output interval is cut into the
          fewest equal steps no longer than it.
        num_steps: fixed-grid steps over [t[0], t[-1]] (instead of step_size).
        adjoint: False backpropagates through the solver (best for short
          fixed-step solves; under XLA an adaptive solve then preallocates
          activations for max_num_steps steps, so lower max_num_steps or use the
          adjoint there); True uses the adjoint method (memory independent of the
          number of steps); "seminorm" the adjoint whose backward error control
          ignores parameter gradients (fewer backward evaluations).
        adjoint_rtol, adjoint_atol: tolerances of the backward solve (default:
          rtol, atol).
        max_num_steps: bound on trial steps (accepted + rejected) per solve.
        min_step_size: adaptive steps never go below max(min_step_size,
          4·eps·max|t|); a rejected step of that size ends the solve.
      return_stats: also return a `SolveStats` of the forward solve.
      backward_stats: a `StatsRecorder` (or any `StatsSink`) that receives the
        counts of the adjoint's backward solve when the gradient is computed.

    Returns:
      The solution with a leading axis of len(t) on every leaf of y0's
      structure, or `(solution, stats)` with `return_stats=True`.

    Raises:
      ValueError / TypeError: bad options, shapes or dtypes, NaN/inf in y0 or t.
      MaxStepsExceededError, StepSizeTooSmallError, NonFiniteStateError
      (subclasses of `ODESolverError`, naming the knob to turn) in eager mode when
      the solve fails. In a `tf.function` the failure is a
      `tf.errors.InvalidArgumentError` naming that class; inside
      `ode_zoo.solver_errors()` (and in a zoo model's `predict`, `fit`,
      `evaluate`) it is raised as the class itself. Under XLA (`jit_compile=True`)
      nothing can raise: the outputs not reached are NaN and `stats.status` (a
      `Status`, 0 on success) says why, so pass `return_stats=True` and check it
      there; without it a failed solve's NaN carries no flag.

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo import odeint
        >>> ys = odeint(lambda t, y: -y, tf.constant([1.0]), tf.constant([0.0, 1.0]))
        >>> round(float(ys[-1, 0]), 4)    # exp(-1)
        0.3679
    """
    solver = Solver.resolve(solver, options)
    packer = StatePacker(y0)
    t = tf.cast(tf.convert_to_tensor(t), packer.dtype)
    y0_flat = _check_inputs(packer.pack(y0), t)
    settings = dict(step_size=solver.step_size, num_steps=solver.num_steps,
                    max_num_steps=solver.max_num_steps, min_step_size=solver.min_step_size)
    options = SolverOptions(TABLEAUS[solver.method], rtol=solver.rtol, atol=solver.atol,
                            **settings)
    field = VectorField(func, packer, params)
    if solver.adjoint is False:
        ys, stats, _, _ = solve_flat(lambda s, y: field(s, y, field.params), y0_flat, t, options)
    else:
        backward = SolverOptions(
            options.tableau,
            rtol=solver.rtol if solver.adjoint_rtol is None else solver.adjoint_rtol,
            atol=solver.atol if solver.adjoint_atol is None else solver.adjoint_atol,
            **settings)
        ys, stats = odeint_adjoint(field, y0_flat, t, options, backward,
                                   seminorm=solver.adjoint == "seminorm",
                                   backward_stats=backward_stats)
    ys = guard(ys, stats.status, max_num_steps=solver.max_num_steps,
               min_step_size=solver.min_step_size)
    solution = packer.unpack_trajectory(ys)
    return (solution, stats) if return_stats else solution
