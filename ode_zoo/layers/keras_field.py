"""`KerasField`: the one adapter from a Keras layer to a vector field with
explicit parameters, and `odeint`, the package-level solve that takes layers.

The numerics (`ode_zoo.solvers`, `ode_zoo.flows`) know nothing of Keras: they
take `func(t, y, params)` and the parameter tensors. A layer's `call(t, y)`
becomes such a function through `stateless_call`, evaluated on its trainable
variables' current values, so gradients reach the weights as ordinary inputs of
the solve (also through the adjoint, under XLA and under a distribution
strategy). Every zoo layer that solves (`ODEBlock`, the flows' bijectors,
ODE2VAE) uses it.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.layers import DenseVectorField
    >>> layer = DenseVectorField(hidden_units=(8,))
    >>> layer.build((), (None, 3))
    >>> field = KerasField(layer)
    >>> field(tf.constant(0.0), tf.ones((2, 3)), field.parameters()).shape
    TensorShape([2, 3])
    >>> odeint(layer, tf.ones((2, 3)), tf.constant([0.0, 1.0]), method="rk4",
    ...        num_steps=2).shape
    TensorShape([2, 2, 3])
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence

import keras
import tensorflow as tf

from ode_zoo import solvers


class KerasField:
    """A built Keras layer with `call(t, y)` as `field(t, y, params)`; its
    `parameters()` are the current values of the layer's trainable variables."""

    def __init__(self, layer: keras.layers.Layer):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"KerasField adapts a keras.layers.Layer with call(t, y), got "
                            f"{type(layer).__name__}.")
        if not layer.built:
            raise ValueError(
                f"The Keras layer {layer.name!r} must be built before it is solved: call it "
                "once on (t, y) or call its build() method.")
        self.layer = layer

    @property
    def name(self) -> str:
        return self.layer.name

    def parameters(self) -> List[tf.Tensor]:
        """The trainable variables' current values, in the layer's order."""
        return [v.value for v in self.layer.trainable_variables]

    def __call__(self, t: tf.Tensor, y: Any, params: Sequence[tf.Tensor]) -> Any:
        non_trainable = [v.value for v in self.layer.non_trainable_variables]
        return self.layer.stateless_call(list(params), non_trainable, t, y)[0]


def odeint(func: Callable, y0: Any, t: Any, solver: solvers.SolverLike = None,
           **options: Any) -> Any:
    """`ode_zoo.solvers.odeint`, where `func` may also be a built Keras layer with
    `call(t, y)` (solved through `KerasField`, so its weights get gradients, also
    with the adjoint). See `ode_zoo.solvers.odeint` for every argument."""
    if isinstance(func, keras.layers.Layer):
        field = KerasField(func)
        return solvers.odeint(field, y0, t, solver, params=field.parameters(), **options)
    return solvers.odeint(func, y0, t, solver, **options)
