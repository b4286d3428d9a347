"""`ODERNN`: the ODE-RNN encoder of irregularly sampled series (Rubanova, Chen &
Duvenaud 2019).

A hidden state h starts at 0 at each row's first time. Between consecutive times
t_{i−1} < t_i it follows dh/dt = f(h) (an autonomous MLP, `AutonomousDenseField`);
at t_i a GRU cell updates it from the step's inputs x_i where the step has an
observation. Steps are processed index by index over the batch, and every row
integrates its own interval in the same solve: with s = (t − t_{i−1}) / Δt_i,
dh/ds = Δt_i·f(h) over s ∈ [0, 1]. A step with Δt = 0 and no observation (the
padding after a row's last step) therefore leaves h exactly as it is.

Example:
    >>> import tensorflow as tf
    >>> layer = ODERNN(4, field_units=(8,), solver={"method": "rk4", "num_steps": 1})
    >>> times = tf.constant([[0.0, 0.1, 0.3], [0.0, 0.2, 0.2]])
    >>> inputs, observed = tf.ones((2, 3, 5)), tf.constant([[True] * 3, [True, True, False]])
    >>> layer(times, inputs, observed).shape
    TensorShape([2, 4])
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from ode_zoo import solvers
from ode_zoo.layers.keras_field import KerasField
from ode_zoo.layers.vector_fields import AutonomousDenseField
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.solver import solver_settings


def intervals(times: tf.Tensor) -> tf.Tensor:
    """Δt [N, T] of times [N, T]: each step's time minus the previous one's (0 first).

    Example:
        >>> intervals(tf.constant([[1.0, 1.5, 3.0]])).numpy().tolist()
        [[0.0, 0.5, 1.5]]
    """
    return times - tf.concat([times[:, :1], times[:, :-1]], axis=1)


def evolve_rows(field: keras.layers.Layer, solver: Solver, h: tf.Tensor,
                dt: tf.Tensor) -> tf.Tensor:
    """h [N, K] carried by the autonomous dh/dt = field(h) over each row's own span
    dt [N], all rows in one solve: dh/ds = dt·field(h) over s ∈ [0, 1] (a row with
    dt = 0 stays exactly as it is).

    Example:
        >>> field = AutonomousDenseField(())
        >>> field.build((), (None, 2))
        >>> evolve_rows(field, Solver("rk4", num_steps=1), tf.ones((2, 2)),
        ...             tf.constant([0.0, 1.0])).shape
        TensorShape([2, 2])
    """
    keras_field = KerasField(field)
    dt = tf.cast(dt, h.dtype)[:, None]

    def rescaled(s: tf.Tensor, y: tf.Tensor, params: Sequence[tf.Tensor]) -> tf.Tensor:
        return dt * keras_field(s, y, params)

    span = tf.constant([0.0, 1.0], h.dtype)
    return solvers.odeint(rescaled, h, span, solver, params=keras_field.parameters())[-1]


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODERNN(keras.layers.Layer):
    """ODE-RNN over padded irregular series: `call(times [N, T], inputs [N, T, F],
    observed [N, T] bool)` returns the hidden state [N, units] after each row's
    last step.

    Args:
      units: the size of h (the GRU cell's units).
      field_units, field_activation: the hidden layers of f.
      solver: the `Solver` of each interval's solve over s ∈ [0, 1] (default rk4
        with one step, backpropagated); its settings may also be keywords.
    """

    default_solver = Solver("rk4", num_steps=1)

    def __init__(self, units: int, field_units: Sequence[int] = (64, 64),
                 field_activation: str = "tanh", solver: SolverLike = None,
                 **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), self.default_solver)
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}.")
        self.units, self.solver = int(units), solver
        self.field = AutonomousDenseField(field_units, field_activation, name="field")
        self.cell = keras.layers.GRUCell(self.units, name="gru_cell")

    def build(self, times_shape: tuple, inputs_shape: tuple, observed_shape: tuple) -> None:
        self.field.build((), (None, self.units))
        self.cell.build((None, inputs_shape[-1]))

    def evolve(self, h: tf.Tensor, dt: tf.Tensor) -> tf.Tensor:
        """h [N, units] carried by dh/dt = f(h) over each row's own time span dt [N].

        Example:
            >>> layer = ODERNN(2, field_units=())
            >>> layer.build((None, 1), (None, 1, 1), (None, 1))
            >>> h = tf.ones((2, 2))
            >>> bool(tf.reduce_all(layer.evolve(h, tf.constant([0.0, 0.5]))[0] == h[0]))
            True
        """
        return evolve_rows(self.field, self.solver, h, dt)

    def call(self, times: Any, inputs: Any, observed: Any) -> tf.Tensor:
        inputs = tf.convert_to_tensor(inputs, self.compute_dtype)
        times = tf.cast(times, inputs.dtype)
        observed = tf.cast(observed, tf.bool)
        steps = intervals(times)

        def step(h: tf.Tensor, elements: tuple) -> tf.Tensor:
            dt, x, seen = elements
            h = self.evolve(h, dt)
            updated, _ = self.cell(x, [h])
            return tf.where(seen[:, None], updated, h)

        h0 = tf.zeros([tf.shape(inputs)[0], self.units], inputs.dtype)
        elements = (tf.transpose(steps), tf.transpose(inputs, [1, 0, 2]), tf.transpose(observed))
        return tf.foldl(step, elements, initializer=h0)

    def compute_output_shape(self, times_shape: tuple, inputs_shape: tuple,
                             observed_shape: tuple) -> tuple:
        return (inputs_shape[0], self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.units, field_units=list(self.field.hidden_units),
                      field_activation=keras.activations.serialize(self.field.activation),
                      solver=self.solver.get_config())
        return config
