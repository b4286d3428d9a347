"""`odeint`: the one public entry point for solving ODEs."""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import tensorflow as tf

from ode_zoo.solvers.adjoint import odeint_adjoint
from ode_zoo.solvers.errors import guard
from ode_zoo.solvers.fields import VectorField
from ode_zoo.solvers.solve import SolverOptions, solve_flat
from ode_zoo.solvers.state import StatePacker
from ode_zoo.solvers.stats import StatsSink
from ode_zoo.solvers.tableaus import TABLEAUS

ADJOINT_MODES = (False, True, "seminorm")


def check_solver_options(method: str, rtol: float, atol: float, step_size: Optional[float],
                         num_steps: Optional[int], adjoint: Union[bool, str],
                         max_num_steps: int, min_step_size: float = 0.0) -> None:
    """Raise a `ValueError` that names the accepted values for a bad option of
    `odeint` (also used by layers that hold these options)."""
    if method not in TABLEAUS:
        raise ValueError(f"Unknown method {method!r}; available methods are {sorted(TABLEAUS)}.")
    if step_size is not None and num_steps is not None:
        raise ValueError("Pass step_size or num_steps, not both.")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}.")
    if num_steps is not None and (int(num_steps) != num_steps or num_steps < 1):
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}.")
    if step_size is None and num_steps is None and not TABLEAUS[method].adaptive:
        raise ValueError(
            f"Method {method!r} has no error estimate: pass step_size or num_steps, or choose "
            f"an adaptive method ({sorted(m for m, tb in TABLEAUS.items() if tb.adaptive)}).")
    if rtol < 0 or atol < 0 or rtol + atol == 0:
        raise ValueError(f"rtol and atol must be >= 0 and not both 0, got {rtol}, {atol}.")
    if not (adjoint is False or adjoint is True or adjoint == "seminorm"):
        raise ValueError(f"adjoint must be one of {ADJOINT_MODES}, got {adjoint!r}.")
    if int(max_num_steps) != max_num_steps or max_num_steps < 1:
        raise ValueError(f"max_num_steps must be a positive integer, got {max_num_steps}.")
    if min_step_size < 0:
        raise ValueError(f"min_step_size must be >= 0, got {min_step_size}.")


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


def odeint(func: Callable, y0: Any, t: Union[tf.Tensor, np.ndarray, list], *,
           method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
           step_size: Optional[float] = None, num_steps: Optional[int] = None,
           adjoint: Union[bool, str] = False, adjoint_rtol: Optional[float] = None,
           adjoint_atol: Optional[float] = None, max_num_steps: int = 4096,
           min_step_size: float = 0.0, return_stats: bool = False,
           backward_stats: Optional[StatsSink] = None):
    """Solve dy/dt = func(t, y) from y(t[0]) = y0 and return y at every time in `t`.

    Args:
      func: `func(t, y)` returning dy/dt with y's structure. A plain function,
        a `tf.Module`, or a built Keras layer with `call(t, y)` (evaluated
        functionally; gradients reach its trainable variables).
      y0: float tensor or nested structure (`tf.nest`) of tensors of one dtype.
      t: 1-D strictly increasing or decreasing output times; `t[0]` is y0's
        time. Cast to y0's dtype.
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
      (subclasses of `ODESolverError`) in eager mode when the solve fails; in a
      `tf.function` the same messages come as `tf.errors.InvalidArgumentError`;
      under XLA assertions are dropped: unreached outputs are NaN and
      `stats.status` is non-zero.

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo import odeint
        >>> ys = odeint(lambda t, y: -y, tf.constant([1.0]), tf.constant([0.0, 1.0]))
        >>> round(float(ys[-1, 0]), 4)    # exp(-1)
        0.3679
    """
    check_solver_options(method, rtol, atol, step_size, num_steps, adjoint, max_num_steps,
                         min_step_size)
    packer = StatePacker(y0)
    t = tf.cast(tf.convert_to_tensor(t), packer.dtype)
    y0_flat = _check_inputs(packer.pack(y0), t)
    options = SolverOptions(TABLEAUS[method], rtol=rtol, atol=atol, step_size=step_size,
                            num_steps=num_steps, max_num_steps=int(max_num_steps),
                            min_step_size=min_step_size)
    field = VectorField(func, packer)
    if adjoint is False:
        ys, stats, _, _ = solve_flat(lambda s, y: field(s, y, field.params), y0_flat, t, options)
    else:
        backward = SolverOptions(
            options.tableau, rtol=rtol if adjoint_rtol is None else adjoint_rtol,
            atol=atol if adjoint_atol is None else adjoint_atol, step_size=step_size,
            num_steps=num_steps, max_num_steps=options.max_num_steps,
            min_step_size=min_step_size)
        ys, stats = odeint_adjoint(field, y0_flat, t, options, backward,
                                   seminorm=adjoint == "seminorm", backward_stats=backward_stats)
    ys = guard(ys, stats.status, max_num_steps=max_num_steps, min_step_size=min_step_size)
    solution = packer.unpack_trajectory(ys)
    return (solution, stats) if return_stats else solution
