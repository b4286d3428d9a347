"""`ODEBlock`: a Keras layer that integrates a vector-field layer from t0 to t1.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.layers import DenseVectorField, ODEBlock
    >>> block = ODEBlock(DenseVectorField(hidden_units=(8,)), augment_dim=2)
    >>> block(tf.ones((4, 3))).shape
    TensorShape([4, 5])
"""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from ode_zoo.layers.keras_field import KerasField
from ode_zoo.solvers import Solver, SolverLike, SolveStats, odeint
from ode_zoo.solvers.errors import Status, error_for_status
from ode_zoo.solvers.solver import solver_settings


DEFAULT_SOLVER = Solver("dopri5", rtol=1e-3, atol=1e-3, adjoint=True)


class EvaluationCount(keras.metrics.Mean):
    """Mean number of vector-field evaluations per solve. `record(stats)` makes
    it a `StatsSink`, so the adjoint's backward solve can report into it."""

    def record(self, stats: SolveStats) -> list:
        self.update_state(stats.num_evaluations)
        return []


class SolveStatus(keras.metrics.Metric):
    """The highest `Status` code of the solves since the last reset (0: every solve
    reached t1). A failed solve raises, except under XLA (`jit_compile=True`), which
    drops the check: there its outputs are NaN and this metric is the flag."""

    def __init__(self, name: str = "solve_status", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.status = self.add_variable(shape=(), initializer="zeros", dtype="int32",
                                        name="status")

    def update_state(self, status: Any) -> None:
        self.status.assign(ops.maximum(self.status, ops.cast(status, "int32")))

    def result(self) -> Any:
        return ops.cast(self.status, "float32")    # a tensor, also of a replicated variable


def _check_block_args(t0: float, t1: float, augment_dim: int) -> None:
    """Raise a `ValueError` for a bad time span or augmentation."""
    if t1 == t0:
        raise ValueError(f"t1 must differ from t0, got t0 = t1 = {t0}.")
    if (not isinstance(augment_dim, numbers.Integral) or isinstance(augment_dim, bool)
            or augment_dim < 0):
        raise ValueError(f"augment_dim must be a non-negative integer, got {augment_dim!r}.")


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODEBlock(keras.layers.Layer):
    """Solves dy/dt = vector_field(t, y) from y(t0) = inputs and returns y(t1).

    The solve is `ode_zoo.solvers.odeint` with the block's `Solver`, the field's
    weights passed explicitly through `KerasField`.

    Augmentation (ANODE, Dupont et al. 2019): with `augment_dim > 0`, that many
    zero channels are appended to the last axis of the inputs before the solve,
    and the augmented state is returned, so layers after the block see a last
    dimension of `input_dim + augment_dim`. The vector field maps that augmented
    state to a derivative of the same shape.

    Function evaluations: every call records the forward solve's number of
    vector-field evaluations in the metric `nfe_metric` (named
    `"<layer name>_nfe"`), and with an adjoint every gradient records the
    backward solve's in `backward_nfe_metric` (`"<layer name>_backward_nfe"`), so
    `model.fit` logs their means and `History` keeps them.

    Failed solves: a solve that cannot reach t1 raises an `ODESolverError`
    (in `predict`/`fit` an `InvalidArgumentError` naming it: see
    `ode_zoo.solver_errors`). Under XLA nothing can raise; the output is NaN and
    the metric `status_metric` (`"<layer name>_solve_status"`) holds the failure's
    `Status` code until reset, which `raise_for_status()` raises after the compiled
    call (inside `ode_zoo.solver_errors()`, as in zoo models' `predict`, `fit` and
    `evaluate`, the context raises it).

    Args:
      vector_field: a Keras layer with `call(t, y)` returning dy/dt with y's
        shape; built by this block's `build` on the augmented input shape.
      t0, t1: start and end time (t1 < t0 integrates backwards).
      solver: the `Solver` (or its config dict); default `DEFAULT_SOLVER`, dopri5
        at rtol = atol = 1e-3 with the adjoint. Its settings may also be given
        as keywords (`method="rk4", num_steps=2`), replacing the default's.
      augment_dim: zero channels appended before the solve (default 0: none).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo.layers import DenseVectorField
        >>> block = ODEBlock(DenseVectorField(hidden_units=(8,)), method="rk4", num_steps=2)
        >>> block(tf.ones((4, 3))).shape
        TensorShape([4, 3])
        >>> float(block.nfe_metric.result())   # 2 steps of 4 stages
        8.0
    """

    def __init__(self, vector_field: keras.layers.Layer, t0: float = 0.0, t1: float = 1.0,
                 solver: SolverLike = None, augment_dim: int = 0, **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), DEFAULT_SOLVER)
        super().__init__(**kwargs)
        if not isinstance(vector_field, keras.layers.Layer):
            raise TypeError(
                "vector_field must be a keras.layers.Layer with call(t, y), got "
                f"{type(vector_field).__name__}.")
        _check_block_args(t0, t1, augment_dim)
        self.vector_field = vector_field
        self.t0 = float(t0)
        self.t1 = float(t1)
        self.solver = solver
        self.augment_dim = int(augment_dim)
        self.nfe_metric = EvaluationCount(name=f"{self.name}_nfe")
        self.backward_nfe_metric = (EvaluationCount(name=f"{self.name}_backward_nfe")
                                    if solver.adjoint is not False else None)
        self.status_metric = SolveStatus(name=f"{self.name}_solve_status")

    def build(self, input_shape: tuple) -> None:
        state_shape = self.compute_output_shape(input_shape)
        t = keras.KerasTensor(shape=(), dtype=self.compute_dtype)
        y = keras.KerasTensor(shape=state_shape, dtype=self.compute_dtype)
        derivative = self.vector_field(t, y)
        if tuple(derivative.shape) != state_shape:
            raise ValueError(
                f"vector_field must return dy/dt with the state's shape {state_shape}, "
                f"got {tuple(derivative.shape)}.")

    def call(self, inputs: Any) -> Any:
        y0 = inputs
        if self.augment_dim:
            paddings = [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.augment_dim]]
            y0 = ops.pad(inputs, paddings)
        t = ops.convert_to_tensor([self.t0, self.t1], dtype=y0.dtype)
        field = KerasField(self.vector_field)
        ys, stats = odeint(field, y0, t, self.solver, params=field.parameters(),
                           return_stats=True, backward_stats=self.backward_nfe_metric)
        self.nfe_metric.update_state(stats.num_evaluations)
        self.status_metric.update_state(stats.status)
        return ys[-1]

    def raise_for_status(self) -> None:
        """Raise the `ODESolverError` of the failure in `status_metric`, if any: how a
        solve that failed under XLA, where nothing can raise, reaches the caller."""
        status = int(self.status_metric.result())
        if status != Status.SUCCESS:
            raise error_for_status(Status(status), stage=f"{self.name} (under XLA)",
                                   max_num_steps=self.solver.max_num_steps,
                                   min_step_size=self.solver.min_step_size)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        last = input_shape[-1]
        return tuple(input_shape[:-1]) + (None if last is None else last + self.augment_dim,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "vector_field": keras.saving.serialize_keras_object(self.vector_field),
            "t0": self.t0,
            "t1": self.t1,
            "solver": self.solver.get_config(),
            "augment_dim": self.augment_dim,
        })
        return config

    @classmethod
    def from_config(cls, config: dict) -> "ODEBlock":
        config = dict(config)
        config["vector_field"] = keras.saving.deserialize_keras_object(config["vector_field"])
        return cls(**config)
