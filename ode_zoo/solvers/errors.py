"""Why a solve stopped: status codes carried out of the solver loop, and the
exceptions `odeint` raises for them.

Inside the loop nothing is raised (that would not survive `tf.function` or XLA);
the loop ends with a status code and `odeint` turns it into an exception: eagerly
the `ODESolverError` subclass, in a graph an assertion whose
`tf.errors.InvalidArgumentError` names that subclass, which `solver_errors()`
raises as the subclass again. XLA drops assertions (see `guard`).

Example:
    >>> from ode_zoo.solvers.errors import Status, error_for_status
    >>> error = error_for_status(Status.MAX_STEPS, stage="odeint", max_num_steps=10,
    ...                          min_step_size=0.0)
    >>> isinstance(error, MaxStepsExceededError)
    True
"""
from __future__ import annotations

import contextlib
import enum
import re
from typing import Iterator, Optional, Tuple

import tensorflow as tf


class Status(enum.IntEnum):
    """Outcome of a solve, as an int32 in `SolveStats.status`."""

    SUCCESS = 0
    MAX_STEPS = 1
    STEP_TOO_SMALL = 2
    NON_FINITE = 3


class ODESolverError(RuntimeError):
    """A solve that could not reach the final time."""


class MaxStepsExceededError(ODESolverError):
    """The step budget `max_num_steps` ran out before the final time."""


class StepSizeTooSmallError(ODESolverError):
    """The step size controller asked for a step below the minimum."""


class NonFiniteStateError(ODESolverError):
    """The state or its derivative became NaN or infinite."""


_MESSAGES = {
    Status.MAX_STEPS: (
        MaxStepsExceededError,
        "{stage} reached max_num_steps={max_num_steps} (accepted and rejected steps) "
        "before the final time. The problem may be stiff or the tolerances too tight: "
        "raise max_num_steps, loosen rtol/atol (adjoint_rtol/adjoint_atol for the "
        "backward solve), or use a fixed step_size."),
    Status.STEP_TOO_SMALL: (
        StepSizeTooSmallError,
        "{stage}: the step size fell below min_step_size={min_step_size} (or the "
        "floating-point resolution of t). The solution may blow up or be stiff: loosen "
        "rtol/atol, lower min_step_size, or check the vector field."),
    Status.NON_FINITE: (
        NonFiniteStateError,
        "{stage} met a NaN or infinite value in the state or in func(t, y) and could "
        "not recover by shrinking the step. Check func and y0 for NaN/inf, or use "
        "a smaller step_size / tighter tolerances."),
}


def message_for_status(status: Status, **knobs) -> str:
    """The explanation of a failed status, naming the knob to turn."""
    return _MESSAGES[Status(status)][1].format(**knobs)


def error_for_status(status: Status, **knobs) -> ODESolverError:
    """The exception for a failed status."""
    cls, _ = _MESSAGES[Status(status)]
    return cls(message_for_status(status, **knobs))


_CLASSES = {cls.__name__: cls for cls, _ in _MESSAGES.values()}
# The class name and message of a failed solve's graph assertion, in TF's error text.
_GRAPH_MESSAGE = re.compile("(" + "|".join(_CLASSES) + r"): ([^\]\n]*)")


def _graph_message(status: Status, **knobs) -> str:
    """The assertion message of a failed status in a graph: error class, then explanation."""
    return f"{_MESSAGES[status][0].__name__}: {message_for_status(status, **knobs)}"


class _FailureRecord:
    """The first failed solve since the outermost `solver_errors()` began, kept in
    variables that graphs traced inside it update (`guard`): how a solve under XLA,
    which drops assertions, reaches the caller. One per process; tracing is
    single-threaded, as Keras does it."""

    def __init__(self) -> None:
        self.depth = 0                   # nesting of active solver_errors() contexts
        self._variables: Optional[Tuple[tf.Variable, tf.Variable, tf.Variable]] = None

    def variables(self) -> Tuple[tf.Variable, tf.Variable, tf.Variable]:
        """(status, max_num_steps, min_step_size) of the first failure, made eagerly
        on first use (also from inside a trace)."""
        if self._variables is None:
            with tf.init_scope():
                self._variables = (
                    tf.Variable(0, dtype=tf.int32, trainable=False, name="solve_status"),
                    tf.Variable(0, dtype=tf.int64, trainable=False, name="max_num_steps"),
                    tf.Variable(0.0, dtype=tf.float64, trainable=False, name="min_step_size"))
        return self._variables

    def updates(self, status: tf.Tensor, knobs: dict) -> list:
        """Operations keeping `status` and its knobs if it is the first failure since
        the reset (later ones are often its NaN reaching the next solve)."""
        recorded, steps, min_step = self.variables()
        status = tf.cast(status, tf.int32)
        first = tf.logical_and(tf.equal(recorded, Status.SUCCESS),
                               tf.not_equal(status, Status.SUCCESS))
        return [steps.assign(tf.where(first, tf.cast(knobs.get("max_num_steps", 0), tf.int64),
                                      steps)),
                min_step.assign(tf.where(first, tf.cast(knobs.get("min_step_size", 0.0),
                                                        tf.float64), min_step)),
                recorded.assign(tf.where(first, status, recorded))]

    def reset(self) -> None:
        for variable in self.variables():
            variable.assign(tf.zeros_like(variable))

    def raise_failure(self) -> None:
        """Raise the recorded failure's `ODESolverError` (and clear it), if any."""
        recorded, steps, min_step = self.variables()
        status = int(recorded.numpy())
        if status != Status.SUCCESS:
            knobs = dict(max_num_steps=int(steps.numpy()), min_step_size=float(min_step.numpy()))
            self.reset()
            raise error_for_status(Status(status), stage="a solve under XLA", **knobs)


_FAILURES = _FailureRecord()


@contextlib.contextmanager
def solver_errors() -> Iterator[None]:
    """Context (or decorator) in which a solve failing inside a `tf.function`
    (`predict`, `fit`, your own) raises the `ODESolverError` subclass it raises
    eagerly, chained to the graph's `InvalidArgumentError`; other errors pass.

    Under XLA (`jit_compile=True`), which drops the graph's assertions, functions
    traced inside this context record a failed solve's status, and the context
    raises its error on exit (a function traced before, outside it, cannot).

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo import odeint
        >>> try:
        ...     with solver_errors():
        ...         ys = tf.function(lambda: odeint(lambda t, y: -y, tf.ones([1]), [0.0, 9.0],
        ...                                         max_num_steps=2), jit_compile=True)()
        ... except ODESolverError as error:
        ...     print(type(error).__name__)
        MaxStepsExceededError
    """
    if _FAILURES.depth == 0:
        _FAILURES.reset()
    _FAILURES.depth += 1
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        match = _GRAPH_MESSAGE.search(error.message or "")
        if match is None:
            raise
        raise _CLASSES[match.group(1)](match.group(2).strip()) from error
    finally:
        _FAILURES.depth -= 1
    _FAILURES.raise_failure()


def guard(value: tf.Tensor, status: tf.Tensor, stage: str = "odeint", **knobs) -> tf.Tensor:
    """`value`, once `status` is known to be SUCCESS.

    Eager: raises the matching `ODESolverError`. Graph: adds assertions that fail
    with its name and message (`tf.errors.InvalidArgumentError`, translated back by
    `solver_errors`). XLA drops assertions; there the unreached outputs are NaN and
    `status` tells why: traced inside `solver_errors()`, the graph also records it
    for that context to raise.
    """
    if tf.executing_eagerly():
        if int(status) != Status.SUCCESS:
            raise error_for_status(Status(int(status)), stage=stage, **knobs)
        return value
    checks = [tf.debugging.Assert(tf.not_equal(status, int(s)),
                                  [_graph_message(s, stage=stage, **knobs)])
              for s in _MESSAGES]
    if _FAILURES.depth:                  # traced inside solver_errors(): also for XLA
        checks += _FAILURES.updates(status, knobs)
    with tf.control_dependencies(checks):
        return tf.identity(value)
