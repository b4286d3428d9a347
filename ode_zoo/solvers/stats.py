"""What a solve did: `SolveStats`, returned by `odeint(..., return_stats=True)`,
and `StatsRecorder`, which keeps the counts of the adjoint's backward solve.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo import odeint
    >>> _, stats = odeint(lambda t, y: -y, tf.ones([2]), tf.constant([0.0, 1.0]),
    ...                   return_stats=True)
    >>> int(stats.status)
    0
"""
from __future__ import annotations

from typing import List, NamedTuple, Protocol

import tensorflow as tf


class SolveStats(NamedTuple):
    """Counts of one solve, as int32 scalar tensors.

    Attributes:
      num_evaluations: calls of the vector field.
      num_accepted_steps: steps taken (all steps, for fixed-step methods).
      num_rejected_steps: trial steps rejected by the error control.
      status: `ode_zoo.solvers.errors.Status` code, 0 on success.
    """

    num_evaluations: tf.Tensor
    num_accepted_steps: tf.Tensor
    num_rejected_steps: tf.Tensor
    status: tf.Tensor


class StatsSink(Protocol):
    """Anything that takes the counts of a solve where they cannot be returned
    (the adjoint's backward solve): `StatsRecorder`, or a metric with `record`."""

    def record(self, stats: SolveStats) -> List:
        """Take `stats`; returns the operations that store them (may be empty)."""


class StatsRecorder(tf.Module):
    """Variables that receive the counts of the adjoint's backward solve, which
    runs inside the gradient computation where nothing can be returned.

    Pass it as `odeint(..., adjoint=True, backward_stats=recorder)`; after the
    gradient is computed, `recorder.result()` holds the backward solve's counts
    (summed over its segments between output times).

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo import odeint
        >>> recorder, k = StatsRecorder(), tf.Variable(1.0)
        >>> with tf.GradientTape() as tape:
        ...     y = odeint(lambda t, y: -k * y, tf.ones([1]), [0.0, 1.0], adjoint=True,
        ...                backward_stats=recorder)
        >>> _ = tape.gradient(y, k)
        >>> int(recorder.result().num_evaluations) > 0
        True
    """

    def __init__(self, name: str = "backward_stats"):
        super().__init__(name=name)
        self._variables = [tf.Variable(0, dtype=tf.int32, trainable=False, name=field)
                           for field in SolveStats._fields]

    def record(self, stats: SolveStats) -> List:
        """Assign `stats` to the variables; returns the assign operations."""
        return [v.assign(tf.cast(x, tf.int32)) for v, x in zip(self._variables, stats)]

    def result(self) -> SolveStats:
        """The last recorded counts."""
        return SolveStats(*[v.read_value() for v in self._variables])
