"""`FFJORDToyFlow`: FFJORD on 2-D toy densities (Grathwohl et al. 2019) with
RNODE's regularized training (Finlay et al. 2020).

Training solves the flow with fixed-step RK4 (adjoint gradients by default) and
minimizes NLL + λ_K·kinetic + λ_J·jacobian; `log_prob` and `sample` use the
evaluation solver (dopri5 at rtol = atol = 1e-5 by default). The metric
`nfe` counts the vector-field evaluations per solve, `backward_nfe` those of the
adjoint's backward solve.

Example:
    >>> import tensorflow as tf
    >>> model = FFJORDToyFlow(hidden_units=(8,), num_steps=2,
    ...                       eval_solver={"method": "rk4", "num_steps": 2})
    >>> model.log_prob(tf.zeros((3, 2))).shape
    TensorShape([3])
    >>> model.sample(tf.random.stateless_normal((4, 2), seed=[0, 0])).shape
    TensorShape([4, 2])
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.flows.gaussian import standard_normal_log_prob
from ode_zoo.layers import DenseVectorField
from ode_zoo.layers.ode_block import EvaluationCount
from ode_zoo.models.flow import FlowModel
from ode_zoo.models.train_steps import minimize_and_record
from ode_zoo.solvers import Solver, SolverLike


@keras.saving.register_keras_serializable(package="ode_zoo")
class FFJORDToyFlow(FlowModel):
    """A continuous normalizing flow on 2-D points over a standard normal base.

    The flow maps base noise z (t = 0) to data x (t = 1) along a `DenseVectorField`:
    `sample(z)` solves forward, `log_prob(x)` solves back from x to z.

    Args:
      hidden_units, activation: the `DenseVectorField` MLP.
      trace: the FFJORD trace estimator ("exact" is cheap in 2-D).
      kinetic_weight, jacobian_weight: RNODE's λ_K and λ_J (default 0.01 each).
      t1: end time of the flow (starts at 0).
      solver: the training `Solver` (fixed-step RK4, 8 steps, adjoint gradients);
        its settings may also be given as keywords.
      eval_solver: the `Solver` of `log_prob`, `sample` and `evaluate` (dopri5 at 1e-5).

    `fit` reports loss, nll (nats per point), kinetic and jacobian (batch means),
    nfe (evaluations of the training solve) and, with an adjoint, backward_nfe;
    `evaluate` reports nll and nfe under the evaluation solver.
    """

    default_solver = Solver("rk4", num_steps=8, adjoint=True)

    def __init__(self, hidden_units: Sequence[int] = (64, 64, 64), activation: str = "tanh",
                 trace: str = "exact", kinetic_weight: float = 0.01,
                 jacobian_weight: float = 0.01, t1: float = 1.0, solver: SolverLike = None,
                 eval_solver: SolverLike = None, **kwargs: Any) -> None:
        super().__init__(solver=solver, eval_solver=eval_solver, **kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.trace = trace
        self.kinetic_weight, self.jacobian_weight = float(kinetic_weight), float(jacobian_weight)
        self.t1 = float(t1)
        self.field = DenseVectorField(self.hidden_units, activation=activation,
                                      name="vector_field")
        self.field.build((), (None, 2))
        self.built = True                   # every weight exists: the field is built
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "nll", "kinetic", "jacobian")}
        self.nfe_metric = EvaluationCount(name="nfe")
        self.backward_nfe_metric = (EvaluationCount(name="backward_nfe")
                                    if self.solver.adjoint is not False else None)
        self._flows = {
            "train": self.flow(self.field, self.solver, trace=trace, t1=self.t1,
                               regularize=True, stats_sink=self.nfe_metric,
                               backward_stats_sink=self.backward_nfe_metric),
            "eval": self.flow(self.field, self.eval_solver, trace=trace, t1=self.t1,
                              stats_sink=self.nfe_metric),
        }

    @property
    def event_shape(self) -> Tuple[int, ...]:
        return (2,)

    @property
    def metrics(self) -> list:
        counts = [self.nfe_metric, self.backward_nfe_metric]
        return list(self._trackers.values()) + [m for m in counts if m is not None]

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.log_prob(x)

    def checked_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        """log p(x) in nats for points x [N, 2] (evaluation solver); `log_prob` checks x.

        Example:
            >>> import tensorflow as tf
            >>> FFJORDToyFlow(hidden_units=(4,)).log_prob(tf.ones((2, 2))).shape
            TensorShape([2])
        """
        # x is fresh (`check_points`): the bijector cache must not return a solve from
        # older weights.
        flow = self._flows["eval"]
        z = flow.inverse(x)
        return standard_normal_log_prob(z) + flow.inverse_log_det_jacobian(x, event_ndims=1)

    def checked_sample(self, z: tf.Tensor) -> tf.Tensor:
        """The points [N, 2] the flow makes of base noise z [N, 2] (evaluation solver);
        `sample` checks z.

        Example:
            >>> import tensorflow as tf
            >>> model = FFJORDToyFlow(hidden_units=(4,))
            >>> model.sample(tf.random.stateless_normal((3, 2), seed=[0, 1])).shape
            TensorShape([3, 2])
        """
        return self._flows["eval"].forward(z)   # fresh (`check_noise`): see checked_log_prob

    def train_step(self, data: Any) -> Dict[str, tf.Tensor]:
        x = self.check_points(data[0] if isinstance(data, (tuple, list)) else data)
        with tf.GradientTape() as tape:
            result = self._flows["train"].inverse_with_regularizers(x)
            nll = -tf.reduce_mean(standard_normal_log_prob(result.output)
                                  + result.log_det_jacobian)
            kinetic = tf.reduce_mean(result.kinetic)
            jacobian = tf.reduce_mean(result.jacobian)
            loss = nll + self.kinetic_weight * kinetic + self.jacobian_weight * jacobian
        return minimize_and_record(self, tape, loss, self._trackers, dict(
            loss=loss, nll=nll, kinetic=kinetic, jacobian=jacobian))

    def test_step(self, data: Any) -> Dict[str, tf.Tensor]:
        x = data[0] if isinstance(data, (tuple, list)) else data
        self._trackers["nll"].update_state(-tf.reduce_mean(self.log_prob(x)))
        return {m.name: m.result() for m in (self._trackers["nll"], self.nfe_metric)}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(hidden_units=list(self.hidden_units), activation=self.activation,
                      trace=self.trace, kinetic_weight=self.kinetic_weight,
                      jacobian_weight=self.jacobian_weight, t1=self.t1)
        return config
