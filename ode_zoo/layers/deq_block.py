"""`DEQBlock`: a deep equilibrium layer, z* = cell(z*, x), with implicit, phantom or
Jacobian-free gradients; and `TanhCell`, the cell tanh(z W + x U + b).

Example:
    >>> import tensorflow as tf
    >>> block = DEQBlock(TanhCell())
    >>> block(tf.ones((4, 3))).shape
    TensorShape([4, 3])
"""

from __future__ import annotations

import warnings
from typing import Any, List

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ode_zoo.equilibrium import fixed_point
from ode_zoo.equilibrium.solve import make_method

GRADIENTS = ("implicit", "phantom", "jacobian_free")


@keras.saving.register_keras_serializable(package="ode_zoo")
class TanhCell(keras.layers.Layer):
    """f(z, x) = tanh(z W + x U + b) with W scaled to spectral norm `w_scale`.

    Example:
        >>> import tensorflow as tf
        >>> TanhCell()(tf.zeros((2, 3)), tf.ones((2, 3))).shape
        TensorShape([2, 3])
    """

    def __init__(self, w_scale: float = 0.5, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.w_scale = float(w_scale)
        self.seed = int(seed)

    def build(self, z_shape: tuple, x_shape: tuple) -> None:
        n, m = z_shape[-1], x_shape[-1]
        w = np.random.default_rng(self.seed).standard_normal((n, n))
        w *= self.w_scale / np.linalg.norm(w, 2)
        self.w = self.add_weight(name="w", shape=(n, n),
                                 initializer=keras.initializers.Constant(w))
        self.u = self.add_weight(name="u", shape=(m, n),
                                 initializer=keras.initializers.GlorotUniform(self.seed + 1))
        self.b = self.add_weight(name="b", shape=(n,), initializer="zeros")

    def call(self, z: Any, x: Any) -> Any:
        return ops.tanh(ops.matmul(z, self.w) + ops.matmul(x, self.u) + self.b)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"w_scale": self.w_scale, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class DEQBlock(keras.layers.Layer):
    """Returns the equilibrium z* = cell(z*, x) of a cell layer (Bai et al. 2019).

    Forward: `fixed_point` from z = 0 without recording gradients, then one
    tracked application of the cell at z*. Gradients ("gradient"):
      - "implicit": the backward solves u = (∂f/∂z)ᵀ u + g with `fixed_point`
        on vector–Jacobian products, then one VJP of f carries u to x and the
        weights. Memory does not grow with the iterations.
      - "phantom": `phantom_steps` damped steps z ← (1−λ) z + λ f(z, x) from z*,
        λ = `phantom_damping`, differentiated by autodiff (Geng et al. 2021).
      - "jacobian_free": ∂f/∂z taken as 0, one VJP of f (Fung et al. 2022).
    The cell is evaluated with `stateless_call` on its weights' values, passed
    as explicit inputs of the `tf.custom_gradient`.

    Metrics (means over calls; `model.fit` logs them): `<name>_forward_steps`,
    `<name>_forward_residual` (relative ‖f(z)−z‖/‖f(z)‖),
    `<name>_forward_not_converged` (fraction of samples), and with
    gradient="implicit" the same three `<name>_backward_*`, recorded when the
    gradient is computed. In eager mode samples that did not converge raise a
    `RuntimeWarning`; in graph mode (`tf.function`, `model.fit`) nothing is
    warned and only the `*_not_converged` metrics show it.

    Args:
      cell: Keras layer with `call(z, x)` returning z's shape; z has x's shape.
      method, tol, max_iter: forward `fixed_point` options (stop_mode "rel").
      backward_method: backward solver (None: `method`).
      backward_tol, backward_max_iter: backward solver options.
      gradient: "implicit", "phantom" or "jacobian_free".
      phantom_steps, phantom_damping: k and λ of the phantom gradient.
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> import tensorflow as tf
        >>> block = DEQBlock(TanhCell(), tol=1e-6, name="deq")
        >>> z = block(tf.ones((2, 3)))
        >>> float(tf.reduce_max(tf.abs(block.cell(z, tf.ones((2, 3))) - z))) < 1e-5
        True
        >>> float(block.forward_not_converged.result())
        0.0
    """

    def __init__(self, cell: keras.layers.Layer, *, method: str = "anderson", tol: float = 1e-3,
                 max_iter: int = 40, backward_method: str | None = None,
                 backward_tol: float = 1e-6, backward_max_iter: int = 40,
                 gradient: str = "implicit", phantom_steps: int = 5,
                 phantom_damping: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cell, keras.layers.Layer):
            raise TypeError(f"cell must be a keras.layers.Layer with call(z, x), "
                            f"got {type(cell).__name__}.")
        if gradient not in GRADIENTS:
            raise ValueError(f"Unknown gradient {gradient!r}; available are {list(GRADIENTS)}.")
        if int(phantom_steps) != phantom_steps or phantom_steps < 1:
            raise ValueError(f"phantom_steps must be a positive integer, got {phantom_steps}.")
        if not 0 < phantom_damping <= 1:
            raise ValueError(f"phantom_damping must be in (0, 1], got {phantom_damping}.")
        make_method(method)
        make_method(backward_method or method)
        self.cell = cell
        self.method = method
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.backward_method = backward_method
        self.backward_tol = float(backward_tol)
        self.backward_max_iter = int(backward_max_iter)
        self.gradient = gradient
        self.phantom_steps = int(phantom_steps)
        self.phantom_damping = float(phantom_damping)
        self.forward_steps, self.forward_residual, self.forward_not_converged = (
            keras.metrics.Mean(name=f"{self.name}_forward_{k}")
            for k in ("steps", "residual", "not_converged"))
        self.backward_steps, self.backward_residual, self.backward_not_converged = (
            keras.metrics.Mean(name=f"{self.name}_backward_{k}")
            for k in ("steps", "residual", "not_converged"))

    def build(self, input_shape: tuple) -> None:
        z = keras.KerasTensor(shape=input_shape, dtype=self.compute_dtype)
        out = self.cell(z, z)
        if tuple(out.shape) != tuple(input_shape):
            raise ValueError(f"cell must return z's shape {tuple(input_shape)}, "
                             f"got {tuple(out.shape)}.")

    def _record(self, result: Any, which: str) -> None:
        """Update the `which` metrics from a `FixedPointResult`; warn eagerly."""
        steps, residual, not_converged = (getattr(self, f"{which}_{k}")
                                          for k in ("steps", "residual", "not_converged"))
        failed = ops.cast(ops.logical_not(result.converged), "float32")
        if tf.executing_eagerly() and bool(ops.any(failed > 0)):
            warnings.warn(f"{self.name}: {int(ops.sum(failed))} of {failed.shape[0]} samples "
                          f"did not converge in the {which} solve.", RuntimeWarning,
                          stacklevel=3)
        steps.update_state(ops.cast(result.num_steps, "float32"))
        residual.update_state(ops.cast(result.rel_residual, "float32"))
        not_converged.update_state(failed)

    def call(self, inputs: Any) -> Any:
        cell = self.cell
        non_trainable = [v.value for v in cell.non_trainable_variables]

        def f(z: Any, x: Any, params: List[Any]) -> Any:
            out, _ = cell.stateless_call(list(params), non_trainable, z, x)
            return out

        params = [v.value for v in cell.trainable_variables]
        x_const = tf.stop_gradient(inputs)
        p_const = [tf.stop_gradient(p) for p in params]
        result = fixed_point(lambda z: f(z, x_const, p_const), tf.zeros_like(inputs),
                             method=self.method, tol=self.tol, max_iter=self.max_iter)
        self._record(result, "forward")
        z_star = tf.stop_gradient(result.z)
        if self.gradient == "jacobian_free":
            return f(z_star, inputs, params)
        if self.gradient == "phantom":
            z, lam = z_star, self.phantom_damping
            for _ in range(self.phantom_steps):
                z = (1.0 - lam) * z + lam * f(z, inputs, params)
            return z
        return self._implicit_step(f, z_star, inputs, params)

    def _implicit_step(self, f: Any, z_star: Any, x: Any, params: List[Any]) -> Any:
        """f(z*, x, θ) whose gradient is the implicit one, (I − ∂f/∂z)⁻ᵀ g through ∂f/∂(x, θ)."""
        block = self

        @tf.custom_gradient
        def step(z: Any, x: Any, *params: Any) -> Any:
            def grad(g: Any) -> Any:
                def vjp_z(u: Any) -> Any:
                    with tf.GradientTape() as tape:
                        tape.watch(z)
                        fz = f(z, x, params)
                    return tape.gradient(fz, z, output_gradients=u) + g

                back = fixed_point(vjp_z, g, method=block.backward_method or block.method,
                                   tol=block.backward_tol, max_iter=block.backward_max_iter)
                block._record(back, "backward")
                u = back.z
                with tf.GradientTape() as tape:
                    tape.watch([x, *params])
                    fz = f(z, x, params)
                grads = tape.gradient(fz, [x, *params], output_gradients=u)
                return [tf.zeros_like(z), *grads]

            return f(z, x, params), grad

        return step(z_star, x, *params)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "cell": keras.saving.serialize_keras_object(self.cell),
            "method": self.method, "tol": self.tol, "max_iter": self.max_iter,
            "backward_method": self.backward_method, "backward_tol": self.backward_tol,
            "backward_max_iter": self.backward_max_iter, "gradient": self.gradient,
            "phantom_steps": self.phantom_steps, "phantom_damping": self.phantom_damping,
        })
        return config

    @classmethod
    def from_config(cls, config: dict) -> "DEQBlock":
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)
