"""`ODENetClassifier`: the Neural ODE paper's MNIST classifier (Chen et al. 2018):
a downsampling stem, one ODEBlock on 64 feature maps, a pooled linear head.

Example:
    >>> import tensorflow as tf
    >>> model = ODENetClassifier(filters=8, groups=4, solver={"method": "rk4", "num_steps": 1})
    >>> model(tf.zeros((2, 28, 28, 1))).shape
    TensorShape([2, 10])
"""
from __future__ import annotations

from typing import Any, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.layers import ConvVectorField, ODEBlock
from ode_zoo.models.image_classifier import ImageClassifier
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.solver import solver_settings


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODENetClassifier(ImageClassifier):
    """Images (float32 raw pixels 0–255, [N, H, W, C]) to class logits.

    The `ImageClassifier` stem and head around an ODEBlock with
    `ConvVectorField` over t ∈ [0, 1]. About 0.21M parameters with the defaults.

    Args:
      num_classes, image_shape, filters, groups: see `ImageClassifier`.
      solver: the ODEBlock's `Solver` (default dopri5 at rtol = atol = 1e-3 with
        the adjoint, at most 1000 steps); its settings may also be keywords.
    """

    default_solver = Solver("dopri5", rtol=1e-3, atol=1e-3, adjoint=True, max_num_steps=1000)

    def __init__(self, num_classes: int = 10, image_shape: Sequence[int] = (28, 28, 1),
                 filters: int = 64, groups: int = 32, solver: SolverLike = None,
                 **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), self.default_solver)
        super().__init__(num_classes, image_shape, filters, groups, **kwargs)
        self.solver = solver
        self.ode_block = ODEBlock(ConvVectorField(filters, groups), name="ode_block",
                                  solver=solver)

    def body(self, h: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.ode_block(h)

    def build_body(self, shape: Tuple) -> None:
        self.ode_block.build(shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config["solver"] = self.solver.get_config()
        return config
