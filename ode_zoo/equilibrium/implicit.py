"""`implicit_step`: f(z*, x, θ) at a fixed point z* = f(z*, x, θ) whose gradient
is the implicit one (Bai et al. 2019), pure TensorFlow.

By the implicit function theorem, for a loss with gradient g at z*,
dL/d(x, θ) = uᵀ ∂f/∂(x, θ) where u solves u = (∂f/∂z)ᵀ u + g. The backward pass
finds u with `fixed_point` on vector–Jacobian products — one evaluation of f at
z* on a persistent tape, whose VJPs every iteration reuses — so memory does not
grow with the forward iterations.

Example:
    >>> import tensorflow as tf
    >>> f = lambda z, x, params: params[0] * z + x          # z* = x / (1 − a)
    >>> a, x = tf.constant(0.5), tf.ones([1, 1])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(a)
    ...     z = implicit_step(f, 2.0 * x, x, [a], method="picard", tol=1e-8, max_iter=200)
    >>> round(float(tape.gradient(z, a)), 4)                  # dz*/da = x / (1 − a)²
    4.0
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import tensorflow as tf

from ode_zoo.equilibrium.result import FixedPointResult
from ode_zoo.equilibrium.solve import fixed_point

Cell = Callable[[tf.Tensor, tf.Tensor, Sequence[tf.Tensor]], tf.Tensor]


def implicit_step(f: Cell, z_star: tf.Tensor, x: tf.Tensor, params: Sequence[tf.Tensor],
                  method: str = "anderson", tol: float = 1e-6, max_iter: int = 40,
                  on_backward: Optional[Callable[[FixedPointResult], None]] = None
                  ) -> tf.Tensor:
    """f(z*, x, params) with the implicit gradient to x and params (none to z*).

    Args:
      f: the cell f(z, x, params).
      z_star: its fixed point for (x, params).
      x, params: the inputs and parameters gradients reach.
      method, tol, max_iter: the backward `fixed_point` solve.
      on_backward: called with the backward solve's `FixedPointResult` (its
        iterations and convergence) when the gradient is computed.
    """
    @tf.custom_gradient
    def step(z: tf.Tensor, x: tf.Tensor, *params: tf.Tensor) -> tf.Tensor:
        def grad(g: tf.Tensor):
            # One evaluation of f at z*, whose tape every VJP below reuses.
            with tf.GradientTape(persistent=True) as tape:
                tape.watch([z, x, *params])
                fz = f(z, x, params)

            def vjp_z(u: tf.Tensor) -> tf.Tensor:
                return tape.gradient(fz, z, output_gradients=u) + g

            back = fixed_point(vjp_z, g, method=method, tol=tol, max_iter=max_iter)
            if on_backward is not None:
                on_backward(back)
            grads = tape.gradient(fz, [x, *params], output_gradients=back.z)
            return [tf.zeros_like(z), *grads]

        return f(z, x, params), grad

    return step(z_star, x, *params)
