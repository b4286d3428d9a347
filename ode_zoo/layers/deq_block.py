"""`DEQBlock`: a deep equilibrium layer, z* = cell(z*, x), with implicit, phantom or
Jacobian-free gradients and optional Jacobian regularization.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.layers import TanhCell
    >>> block = DEQBlock(TanhCell())
    >>> block(tf.ones((4, 3))).shape
    TensorShape([4, 3])
"""

from __future__ import annotations

import warnings
from typing import Any, List, Tuple

import keras
import tensorflow as tf
from keras import ops

from ode_zoo.equilibrium import fixed_point, implicit_step
from ode_zoo.equilibrium.solve import make_method
from ode_zoo.flows.trace_estimators import hutchinson_trace
from ode_zoo.layers.portable import xla_allowed

GRADIENTS = ("implicit", "phantom", "jacobian_free")


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
    as explicit inputs of `ode_zoo.equilibrium.implicit_step`.

    Speed: in a traced call (`tf.function`, `fit`, `predict`) the forward solve is
    compiled with XLA by default (`jit_forward`): on deq_mnist's cell, 128 images,
    one thread, 735 ms against 1063 ms in graph mode. The backward solve stays in
    graph mode, where its VJPs reuse one recorded evaluation of f (1158 ms, against
    2196 ms for an XLA solve that must re-evaluate f for each VJP). Eager calls and
    graphs traced inside `ode_zoo.layers.portable.portable_graphs()` (serving
    exports, as TF Serving runs XLA only on request) use no XLA.

    Jacobian regularization (Bai et al. 2021): with `jacobian_weight` > 0, a
    training call adds the layer loss `jacobian_weight`·‖εᵀ ∂f/∂z‖²/d at z*
    (ε standard normal, d the size of one sample's z; the Hutchinson estimate of
    ‖∂f/∂z‖²_F/d, mean over the batch), on a random `jacobian_frequency` fraction
    of training calls. It keeps f contractive, so the solvers need few
    iterations. The estimate is logged as `<name>_jacobian`.

    Metrics (means over calls; `model.fit` logs them): `<name>_forward_steps`,
    `<name>_forward_residual` (relative ‖f(z)−z‖/‖f(z)‖),
    `<name>_forward_not_converged` (fraction of samples), and with
    gradient="implicit" the same three `<name>_backward_*`, recorded when the
    gradient is computed. In eager mode samples that did not converge raise a
    `RuntimeWarning` with their share; in graph mode (`tf.function`, `model.fit`)
    nothing is warned and the `*_not_converged` metrics show it (`forward_counts`
    reads them, as `DEQClassifier.predict` does to warn after a run).

    Args:
      cell: Keras layer with `call(z, x)` returning z's shape; z has x's shape.
      method, tol, max_iter: forward `fixed_point` options (stop_mode "rel").
      backward_method: backward solver (None: `method`).
      backward_tol, backward_max_iter: backward solver options.
      gradient: "implicit", "phantom" or "jacobian_free".
      phantom_steps, phantom_damping: k and λ of the phantom gradient.
      jacobian_weight: weight of the Jacobian regularizer (0: off).
      jacobian_frequency: fraction of training calls that compute it, in (0, 1].
      seed: seed of the regularizer's noise and frequency draws.
      jit_forward: compile the forward solve of traced calls with XLA (the cell's
        ops must be XLA-compatible; False: graph mode).
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo.layers import TanhCell
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
                 phantom_damping: float = 0.5, jacobian_weight: float = 0.0,
                 jacobian_frequency: float = 1.0, seed: int = 0, jit_forward: bool = True,
                 **kwargs: Any) -> None:
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
        if not jacobian_weight >= 0:
            raise ValueError(f"jacobian_weight must be >= 0, got {jacobian_weight}.")
        if not 0 < jacobian_frequency <= 1:
            raise ValueError(f"jacobian_frequency must be in (0, 1], got {jacobian_frequency}.")
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
        self.jacobian_weight = float(jacobian_weight)
        self.jacobian_frequency = float(jacobian_frequency)
        self.seed = int(seed)
        self.jit_forward = bool(jit_forward)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.jacobian_metric = keras.metrics.Mean(name=f"{self.name}_jacobian")
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
        if tf.executing_eagerly():
            self.warn_not_converged(int(ops.sum(failed)), failed.shape[0], which, stacklevel=3)
        steps.update_state(ops.cast(result.num_steps, "float32"))
        residual.update_state(ops.cast(result.rel_residual, "float32"))
        not_converged.update_state(failed)

    def forward_counts(self) -> Tuple[int, int]:
        """(samples whose forward solve did not converge, samples solved), as counted by
        the `<name>_forward_not_converged` metric since its last reset: what a graph
        run (`predict`) left behind, to compare before and after it.

        Example:
            >>> import tensorflow as tf
            >>> from ode_zoo.layers import TanhCell
            >>> block = DEQBlock(TanhCell())
            >>> _ = tf.function(block)(tf.ones((4, 3)))
            >>> block.forward_counts()
            (0, 4)
        """
        metric = self.forward_not_converged
        return round(float(metric.total)), round(float(metric.count))

    def warn_not_converged(self, failed: int, samples: int, which: str = "forward",
                           stacklevel: int = 1) -> None:
        """A `RuntimeWarning` with the share of `samples` whose `which` solve did not
        converge, and the settings to raise; nothing when `failed` is 0."""
        if not failed:
            return
        prefix = "" if which == "forward" else "backward_"
        warnings.warn(f"{self.name}: {failed} of {samples} samples ({failed / samples:.0%}) did "
                      f"not converge in the {which} solve: their outputs are not equilibria. "
                      f"Raise {prefix}max_iter (now {getattr(self, prefix + 'max_iter')}) or "
                      f"{prefix}tol (now {getattr(self, prefix + 'tol'):g}).", RuntimeWarning,
                      stacklevel=stacklevel + 1)

    def call(self, inputs: Any, training: bool = False) -> Any:
        cell = self.cell
        non_trainable = [v.value for v in cell.non_trainable_variables]

        def f(z: Any, x: Any, params: List[Any]) -> Any:
            out, _ = cell.stateless_call(list(params), non_trainable, z, x)
            return out

        params = [v.value for v in cell.trainable_variables]

        def solve(x: Any, *p: Any) -> Any:
            return fixed_point(lambda z: f(z, x, p), tf.zeros_like(x), method=self.method,
                               tol=self.tol, max_iter=self.max_iter)

        if self.jit_forward and not tf.executing_eagerly() and xla_allowed():
            solve = tf.function(solve, jit_compile=True)
        result = solve(tf.stop_gradient(inputs), *(tf.stop_gradient(p) for p in params))
        self._record(result, "forward")
        z_star = tf.stop_gradient(result.z)
        if training and self.jacobian_weight > 0:
            self.add_loss(self._jacobian_loss(f, z_star, inputs, params))
        if self.gradient == "jacobian_free":
            return f(z_star, inputs, params)
        if self.gradient == "phantom":
            z, lam = z_star, self.phantom_damping
            for _ in range(self.phantom_steps):
                z = (1.0 - lam) * z + lam * f(z, inputs, params)
            return z
        return self._implicit_step(f, z_star, inputs, params)

    def _jacobian_loss(self, f: Any, z_star: Any, x: Any, params: List[Any]) -> Any:
        """jacobian_weight · ‖εᵀ∂f/∂z‖²/d at z*, on a `jacobian_frequency` share of calls."""
        def estimate() -> Any:
            noise = keras.random.normal(ops.shape(z_star), dtype=z_star.dtype,
                                        seed=self.seed_generator)
            # Hutchinson's ‖εᵀ∂f/∂z‖² summed over z's last axis, so its mean over the
            # other axes divided by that axis' size is the mean over all of z.
            frobenius = hutchinson_trace(lambda t, z: f(z, x, params), None, z_star,
                                         noise).frobenius
            value = ops.mean(frobenius) / ops.cast(ops.shape(z_star)[-1], z_star.dtype)
            self.jacobian_metric.update_state(tf.stop_gradient(value))
            return self.jacobian_weight * value

        if self.jacobian_frequency == 1.0:
            return estimate()
        draw = keras.random.uniform((), seed=self.seed_generator)
        return tf.cond(draw < self.jacobian_frequency, estimate,
                       lambda: tf.zeros((), z_star.dtype))

    def _implicit_step(self, f: Any, z_star: Any, x: Any, params: List[Any]) -> Any:
        """f(z*, x, θ) whose gradient is the implicit one, (I − ∂f/∂z)⁻ᵀ g through ∂f/∂(x, θ)."""
        return implicit_step(f, z_star, x, params, method=self.backward_method or self.method,
                             tol=self.backward_tol, max_iter=self.backward_max_iter,
                             on_backward=lambda result: self._record(result, "backward"))

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
            "jacobian_weight": self.jacobian_weight,
            "jacobian_frequency": self.jacobian_frequency, "seed": self.seed,
            "jit_forward": self.jit_forward,
        })
        return config

    @classmethod
    def from_config(cls, config: dict) -> "DEQBlock":
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)
