"""`ODERNNClassifier`: a binary outcome (PhysioNet 2012: in-hospital death) of an
irregularly sampled series from the final hidden state of an ODE-RNN encoder
(Rubanova, Chen & Duvenaud 2019), through an MLP to one logit.

Inputs as `IrregularSeriesModel` takes them; `model(inputs)` returns logits [N];
`probability(inputs)` and the serving endpoints (`serving_default` and the
outcome's name, e.g. `mortality`) the probability [N]. Trained with binary
cross-entropy on the logits, unweighted: AUC, the headline metric, ranks
patients and does not move with class weights, and unweighted probabilities stay
calibrated to the ~14% death rate. Metrics: AUC and accuracy (at probability 0.5).

Example:
    >>> import numpy as np
    >>> model = ODERNNClassifier([0.0, 0.0], [1.0, 10.0], units=4, field_units=(4,),
    ...                          head_units=(4,))
    >>> batch = model.random_examples(3)
    >>> model(batch).shape, model.probability(batch).shape
    (TensorShape([3]), TensorShape([3]))
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.layers.ode_rnn import ODERNN
from ode_zoo.models.batches import has_no_examples
from ode_zoo.models.irregular_series import IrregularSeriesModel
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.solver import solver_settings


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODERNNClassifier(IrregularSeriesModel):
    """ODE-RNN encoder → MLP → logit of a binary outcome.

    Args:
      value_minimum, value_maximum, time_unit: see `IrregularSeriesModel`.
      units: the size of the hidden state (and of the GRU cell).
      field_units, field_activation: the ODE's MLP vector field dh/dt = f(h).
      head_units, head_activation: the MLP from the final hidden state to the logit.
      outcome: the name of the predicted outcome: the task endpoint's name.
      solver: the `Solver` of each interval (default rk4, one step per interval);
        its settings may also be keywords.
      **kwargs: `keras.Model` arguments.
    """

    labelled: ClassVar[bool] = True
    headline_metrics: ClassVar[Tuple[str, ...]] = ("test_auc", "test_accuracy")

    def __init__(self, value_minimum: Sequence[float], value_maximum: Sequence[float],
                 time_unit: float = 48.0, units: int = 64, field_units: Sequence[int] = (64, 64),
                 field_activation: str = "tanh", head_units: Sequence[int] = (64,),
                 head_activation: str = "relu", outcome: str = "mortality",
                 solver: SolverLike = None, **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), ODERNN.default_solver)
        super().__init__(value_minimum, value_maximum, time_unit, **kwargs)
        if not str(outcome).isidentifier() or outcome == "serving_default":
            raise ValueError(f"outcome names a serving endpoint: an identifier other than "
                             f"'serving_default', got {outcome!r}.")
        self.endpoint_name = str(outcome)
        self.solver = solver
        self.encoder = ODERNN(units, field_units, field_activation, solver, name="ode_rnn")
        self.head_units = [int(u) for u in head_units]
        self.head_activation = head_activation
        self.head = [keras.layers.Dense(u, activation=head_activation, name=f"head_{i}")
                     for i, u in enumerate(self.head_units)]
        self.head.append(keras.layers.Dense(1, name="logit"))
        self.build_variables()

    def build_variables(self) -> None:
        if self.built:
            return
        features = 2 * self.num_variables
        self.encoder.build((None, None), (None, None, features), (None, None))
        shape = (None, self.encoder.units)
        for layer in self.head:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs: Any, training: bool = False) -> tf.Tensor:
        series = self.series(inputs)
        if has_no_examples(series.times):
            return tf.zeros([0], self.compute_dtype)
        h = self.encoder(*self.encoder_inputs(series))
        for layer in self.head:
            h = layer(h)
        return h[:, 0]

    def probability(self, inputs: Any) -> tf.Tensor:
        """The outcome's probability [N]."""
        return tf.sigmoid(self(inputs))

    def endpoint_outputs(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {"probability": self.probability(inputs)}

    def compile_defaults(self) -> Dict[str, Any]:
        return dict(loss=keras.losses.BinaryCrossentropy(from_logits=True),
                    metrics=[keras.metrics.AUC(from_logits=True, name="auc"),
                             keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")])

    def get_config(self) -> dict:
        config = super().get_config()
        encoder = self.encoder.get_config()
        config.update(units=encoder["units"], field_units=encoder["field_units"],
                      field_activation=encoder["field_activation"],
                      head_units=list(self.head_units), head_activation=self.head_activation,
                      outcome=self.endpoint_name, solver=self.solver.get_config())
        return config
