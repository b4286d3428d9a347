"""The user's `func(t, y)` as a function of packed states with explicit
parameters, the form the adjoint differentiates.

A Keras layer (anything with `stateless_call`) is evaluated functionally on its
trainable variables' values, so gradients reach them as ordinary inputs of the
solve; any other callable (function, `tf.Module`) reads its variables itself
and the adjoint finds them through `tf.custom_gradient`'s `variables`.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.state import StatePacker
    >>> field = VectorField(lambda t, y: -y, StatePacker(tf.ones([2])))
    >>> field(tf.constant(0.0), tf.ones([2]), field.params).numpy().tolist()
    [-1.0, -1.0]
"""
from __future__ import annotations

from typing import Any, Callable, List

import tensorflow as tf

from ode_zoo.solvers.state import StatePacker


def is_stateless_layer(func: Any) -> bool:
    """True for Keras layers (anything with `stateless_call`), evaluated functionally."""
    return hasattr(func, "stateless_call") and hasattr(func, "trainable_variables")


class VectorField:
    """`func` on packed states: `field(t, y_flat, params) -> dy_flat`.

    Attributes:
      params: tensors the field is evaluated on explicitly (the trainable
        variables' values of a Keras layer; empty for other callables).
    """

    def __init__(self, func: Callable, packer: StatePacker):
        if not callable(func):
            raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}.")
        self._func = func
        self._packer = packer
        self._checked = False
        self.params: List[tf.Tensor] = []
        if is_stateless_layer(func):
            if not func.built:
                raise ValueError(
                    f"The Keras layer {func.name!r} passed as func must be built before odeint "
                    "is called: call it once on (t, y) or call its build() method.")
            self.params = [v.value for v in func.trainable_variables]
            self._non_trainable = [v.value for v in func.non_trainable_variables]

    def __call__(self, t: tf.Tensor, y: tf.Tensor, params: List[tf.Tensor]) -> tf.Tensor:
        state = self._packer.unpack(y)
        if is_stateless_layer(self._func):
            derivative, _ = self._func.stateless_call(list(params), self._non_trainable, t, state)
        else:
            derivative = self._func(t, state)
        if not self._checked:
            self._packer.check_derivative(derivative)
            self._checked = True
        return self._packer.pack(derivative)
