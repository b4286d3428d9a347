"""`ODETrajectory`: the Latent ODE's decoder path (Rubanova, Chen & Duvenaud 2019):
z(t) at each row's own times from z0 at the row's first time, along an autonomous
MLP field dz/dt = g(z) (`AutonomousDenseField`).

Like `ODERNN`, every row integrates its own interval in the same solve (dz/ds =
Δt·g(z), s ∈ [0, 1], one solve per step index): a row's path depends on its own
times only, not on the other rows of the batch (solving on the union of the batch's
times with a fixed-step solver would make it depend on them), and the padding after
a row's last step (its last time repeated, Δt = 0) leaves z exactly as it is.

Example:
    >>> import tensorflow as tf
    >>> layer = ODETrajectory(field_units=(8,), solver={"method": "rk4", "num_steps": 1})
    >>> z0, times = tf.ones((2, 3)), tf.constant([[0.0, 0.1, 0.3], [0.0, 0.2, 0.2]])
    >>> path = layer(z0, times)
    >>> path.shape, bool(tf.reduce_all(path[:, 0] == z0))
    (TensorShape([2, 3, 3]), True)
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from ode_zoo.layers.ode_rnn import evolve_rows, intervals
from ode_zoo.layers.vector_fields import AutonomousDenseField
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.solver import solver_settings


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODETrajectory(keras.layers.Layer):
    """`call(z0 [N, K], times [N, T])` returns z at every step [N, T, K], z0 at each
    row's first time (non-decreasing times along a row).

    Args:
      field_units, field_activation: the hidden layers of g.
      solver: the `Solver` of each interval's solve over s ∈ [0, 1] (default rk4
        with one step, backpropagated); its settings may also be keywords.
    """

    default_solver = Solver("rk4", num_steps=1)

    def __init__(self, field_units: Sequence[int] = (64, 64), field_activation: str = "tanh",
                 solver: SolverLike = None, **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), self.default_solver)
        super().__init__(**kwargs)
        self.solver = solver
        self.field = AutonomousDenseField(field_units, field_activation, name="field")

    def build(self, z0_shape: tuple, times_shape: tuple) -> None:
        self.field.build((), (None, z0_shape[-1]))

    def call(self, z0: Any, times: Any) -> tf.Tensor:
        z0 = tf.convert_to_tensor(z0, self.compute_dtype)
        steps = tf.transpose(intervals(tf.cast(times, z0.dtype)))            # [T, N]
        path = tf.scan(lambda z, dt: evolve_rows(self.field, self.solver, z, dt), steps,
                       initializer=z0)
        return tf.transpose(path, [1, 0, 2])

    def compute_output_shape(self, z0_shape: tuple, times_shape: tuple) -> tuple:
        return (z0_shape[0], times_shape[1], z0_shape[-1])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(field_units=list(self.field.hidden_units),
                      field_activation=keras.activations.serialize(self.field.activation),
                      solver=self.solver.get_config())
        return config
