"""What a solve did, returned by `odeint(..., return_stats=True)`.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo import odeint
    >>> _, stats = odeint(lambda t, y: -y, tf.ones([2]), tf.constant([0.0, 1.0]),
    ...                   return_stats=True)
    >>> int(stats.status)
    0
"""
from __future__ import annotations

from typing import NamedTuple

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
