"""The user's `func` as a function of packed states with explicit parameters,
the form the adjoint differentiates.

With `params` (a list of tensors) the field is `func(t, y, params)`: the
parameters are ordinary inputs of the solve, so gradients reach them — also
through the adjoint, under XLA and under a distribution strategy. Without,
`func(t, y)` reads its variables itself and the adjoint finds them through
`tf.custom_gradient`'s `variables` (a `tf.Module` or a function of
`tf.Variable`s). Keras layers are given explicitly by the one adapter,
`ode_zoo.layers.KerasField`.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.solvers.state import StatePacker
    >>> field = VectorField(lambda t, y, p: -p[0] * y, StatePacker(tf.ones([2])),
    ...                     [tf.constant(2.0)])
    >>> field(tf.constant(0.0), tf.ones([2]), field.params).numpy().tolist()
    [-2.0, -2.0]
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import tensorflow as tf

from ode_zoo.solvers.state import StatePacker


class VectorField:
    """`func` on packed states: `field(t, y_flat, params) -> dy_flat`.

    Attributes:
      params: the tensors the field is evaluated on explicitly (empty without).
    """

    def __init__(self, func: Callable, packer: StatePacker,
                 params: Optional[Sequence[tf.Tensor]] = None):
        if not callable(func):
            raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}.")
        self._func = func
        self._packer = packer
        self._checked = False
        self._explicit = params is not None
        self.params: List[tf.Tensor] = [tf.convert_to_tensor(p) for p in (params or [])]

    def __call__(self, t: tf.Tensor, y: tf.Tensor, params: Sequence[tf.Tensor]) -> tf.Tensor:
        state = self._packer.unpack(y)
        derivative = (self._func(t, state, list(params)) if self._explicit
                      else self._func(t, state))
        if not self._checked:
            self._packer.check_derivative(derivative)
            self._checked = True
        return self._packer.pack(derivative)
