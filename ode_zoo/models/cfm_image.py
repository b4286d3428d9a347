"""`CFMImageFlow`: a continuous normalizing flow of 8-bit images trained by flow
matching (Lipman et al. 2023; OT-CFM, Tong et al. 2023), with the likelihood of
a CNF.

Pixels x ∈ {0, …, 255}^D are dequantized and scaled to [−1, 1):

    y = 2·(x + v)/256 − 1,  v ~ U[0, 1)^D        log-det D·log 2 − D·log 256

or, with `logit_alpha`, mapped by FFJORD's logit transform
(`ode_zoo.flows.logit_transform`) instead of the affine scaling.

Training regresses the U-Net field v(t, y_t) on a conditional path's velocity
(`ode_zoo.flows.flow_matching`): noise y0 ~ N(0, I) at t = 0, data at t = 1,
pairs re-matched by a minibatch OT plan with `coupling="sinkhorn"` — one field
evaluation per example per step, no ODE solve. An exponential moving average
of the weights (`ema_field`) is what `log_prob`, `sample` and `evaluate` use.

The trained field is a CNF: `log_prob` solves it backwards from the data with
the `FFJORD` bijector (Hutchinson trace seeded by `eval_seed`, the evaluation
solver), with one seeded dequantization draw, exactly as `FFJORDImageFlow`
does, so bits/dim of the two are comparable; `sample` solves it forwards from
base noise and quantizes.

Example:
    >>> import tensorflow as tf
    >>> model = CFMImageFlow(image_shape=(4, 4, 1), channels=8, channel_multipliers=(1, 2),
    ...                      groups=4, eval_solver={"method": "rk4", "num_steps": 2})
    >>> model.bits_per_dim(tf.zeros((2, 4, 4, 1))).shape
    TensorShape([2])
    >>> model.sample(tf.zeros((3, 16))).shape
    TensorShape([3, 4, 4, 1])
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.flows.dequantization import quantize, uniform_dequantize
from ode_zoo.flows.flow_matching import (COUPLINGS, PATHS, independent_path, ot_path,
                                         sinkhorn_pairing)
from ode_zoo.flows.gaussian import standard_normal_log_prob
from ode_zoo.flows.logit_transform import check_alpha, inverse_logit_transform, logit_transform
from ode_zoo.layers.ode_block import EvaluationCount
from ode_zoo.layers.unet import UNetVectorField
from ode_zoo.models.flow import ImageFlowModel
from ode_zoo.models.train_steps import record
from ode_zoo.solvers import SolverLike


@keras.saving.register_keras_serializable(package="ode_zoo")
class CFMImageFlow(ImageFlowModel):
    """A flow-matching continuous normalizing flow of 8-bit images over N(0, I).

    Args:
      image_shape: (H, W, C).
      channels, channel_multipliers, res_blocks, groups: the `UNetVectorField`.
      path: "ot" (Lipman's optimal-transport path with `sigma_min`) or
        "independent" (Tong's I-CFM, blurred by σ = `sigma_min`).
      sigma_min: the path's width at the data.
      coupling: "sinkhorn" (minibatch entropic OT pairs, OT-CFM) or "independent".
      ot_regularization, ot_iterations: the Sinkhorn plan's ε (relative to the
        mean cost) and its iterations.
      ema_decay: decay of the weights' moving average, updated every step.
      trace: the likelihood's trace estimator ("hutchinson_rademacher",
        "hutchinson_gaussian", or "exact" for tiny images).
      eval_solver: the `Solver` of `log_prob`, `bits_per_dim` and `sample` (default
        dopri5 at 1e-5, FFJORD's protocol); training solves nothing.
      eval_seed: seed of the evaluation noise (dequantization, trace, validation).
      seed: training step k draws everything (dequantization, noise, pairs, times)
        from the stateless seed (seed, k), so a resumed run draws what it would have.
      evaluate_likelihood: `evaluate` reports bits/dim (a solve per batch) besides the
        flow-matching loss; recipes turn it off for cheap validation during training.
      logit_alpha: None (the flow lives on [−1, 1)) or the α of the logit transform
        the flow lives behind (1e-6 is ffjord_mnist's).

    `fit` reports `loss` (mean squared velocity error); `evaluate` reports `loss`
    (EMA field, seeded draws) and, with `evaluate_likelihood`, `bits_per_dim` and `nfe`.
    """

    def __init__(self, image_shape: Sequence[int] = (28, 28, 1), channels: int = 32,
                 channel_multipliers: Sequence[int] = (1, 2, 2), res_blocks: int = 1,
                 groups: int = 8, path: str = "ot", sigma_min: float = 1e-4,
                 coupling: str = "sinkhorn", ot_regularization: float = 0.01,
                 ot_iterations: int = 100, ema_decay: float = 0.999,
                 trace: str = "hutchinson_rademacher", eval_solver: SolverLike = None,
                 eval_seed: int = 0, evaluate_likelihood: bool = True, seed: int = 0,
                 logit_alpha: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(image_shape=image_shape, eval_solver=eval_solver, **kwargs)
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}.")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}.")
        if sigma_min < 0:
            raise ValueError(f"sigma_min must be >= 0, got {sigma_min!r}.")
        self.unet = dict(channels=int(channels), channel_multipliers=[int(m) for m in
                                                                      channel_multipliers],
                         res_blocks=int(res_blocks), groups=int(groups))
        self.probability_path, self.sigma_min, self.coupling = path, float(sigma_min), coupling
        self.ot_regularization, self.ot_iterations = float(ot_regularization), int(ot_iterations)
        self.ema_decay, self.trace = float(ema_decay), trace
        self.eval_seed = int(eval_seed)
        self.logit_alpha = None if logit_alpha is None else check_alpha(logit_alpha)
        self.evaluate_likelihood, self.seed = bool(evaluate_likelihood), int(seed)
        self.field = UNetVectorField(self.image_shape, name="field", **self.unet)
        self.ema_field = UNetVectorField(self.image_shape, name="ema_field", **self.unet)
        for field in (self.field, self.ema_field):
            field.build((), (None, self.dim))
        for average, weight in zip(self.ema_field.weights, self.field.weights):
            average.assign(weight)
        # Frozen once built: `trainable=False` at construction would not reach the
        # sublayers (and their weights would count in `model.trainable_variables`).
        self.ema_field.trainable = False
        self.built = True                   # every weight exists: the fields are built
        self._trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "bits_per_dim")}
        self._nfe = EvaluationCount(name="nfe")
        self._flow = self.flow(self.ema_field, self.eval_solver, trace=trace, t1=1.0,
                               seed=tf.constant([self.eval_seed, 1], tf.int64),
                               stats_sink=self._nfe)

    @property
    def metrics(self) -> list:
        return list(self._trackers.values()) + [self._nfe]

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return self.log_prob(images)

    def _scaled(self, images: tf.Tensor, noise: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Dequantized images in [−1, 1) (or their logits), flattened [N, D], and
        the log-det of pixels → y per image [N]."""
        u, log_det = uniform_dequantize(images, noise)
        if self.logit_alpha is not None:
            y, logit_log_det = logit_transform(u, self.logit_alpha)
            return tf.reshape(y, [-1, self.dim]), log_det + logit_log_det
        y = tf.reshape(2.0 * u - 1.0, [-1, self.dim])
        return y, log_det + self.dim * math.log(2.0)

    def checked_log_prob(self, images: tf.Tensor) -> tf.Tensor:
        """log P(x) in nats [N] of raw-pixel images [N, H, W, C] (float32 integers
        0–255, checked by `log_prob`): one seeded dequantization draw, the evaluation
        solver, EMA weights.

        Example:
            >>> import tensorflow as tf
            >>> model = CFMImageFlow(image_shape=(2, 2, 1), channels=4,
            ...                      channel_multipliers=(1,), groups=2,
            ...                      eval_solver={"method": "rk4", "num_steps": 1})
            >>> round(float(model.log_prob(tf.fill((1, 2, 2, 1), 7.0))[0]), 3) < 0
            True
        """
        noise = tf.random.stateless_uniform(tf.shape(images), [self.eval_seed, 0])
        y, scale_log_det = self._scaled(images, noise)
        y = tf.identity(y)                  # fresh: the bijector cache keys on the tensor
        z = self._flow.inverse(y)
        return (standard_normal_log_prob(z) + self._flow.inverse_log_det_jacobian(y, event_ndims=1)
                + scale_log_det)

    def checked_sample(self, z: tf.Tensor) -> tf.Tensor:
        """Images [N, H, W, C] (float32 integers 0–255) from base noise z [N, D] (checked
        by `sample`): solved forwards by the evaluation solver, then ⌊256·(y + 1)/2⌋
        (or ⌊256·u⌋ of the inverse logit) clipped to 0–255."""
        y = self._flow.forward(z)
        u = ((y + 1.0) / 2.0 if self.logit_alpha is None
             else inverse_logit_transform(y, self.logit_alpha))
        return tf.reshape(quantize(u), [-1, *self.image_shape])

    def flow_matching_loss(self, images: tf.Tensor, field: keras.layers.Layer,
                           seed: tf.Tensor) -> tf.Tensor:
        """Mean squared error between `field` and the path velocity on a batch of raw
        pixel images, every draw (dequantization, noise, pairing, times) from the
        stateless `seed` [2]."""
        seeds = tf.random.experimental.stateless_split(seed, 5)
        y1, _ = self._scaled(images, tf.random.stateless_uniform(tf.shape(images), seeds[0]))
        y0 = tf.random.stateless_normal(tf.shape(y1), seeds[1])
        if self.coupling == "sinkhorn":
            y1 = tf.gather(y1, sinkhorn_pairing(y0, y1, self.ot_regularization,
                                                self.ot_iterations, seed=seeds[2]))
        t = tf.random.stateless_uniform(tf.shape(y1)[:1], seeds[3])
        if self.probability_path == "ot":
            y_t, target = ot_path(y0, y1, t, self.sigma_min)
        else:
            y_t, target = independent_path(y0, y1, t, self.sigma_min,
                                           tf.random.stateless_normal(tf.shape(y1), seeds[4]))
        return tf.reduce_mean(tf.square(field(t, y_t) - target))

    def train_step(self, data: Any) -> Dict[str, tf.Tensor]:
        images = self.check_images(data[0] if isinstance(data, (tuple, list)) else data)
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        variables = self.field.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.flow_matching_loss(images, self.field, seed)
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        for average, weight in zip(self.ema_field.weights, self.field.weights):
            average.assign(self.ema_decay * average + (1.0 - self.ema_decay) * weight)
        self._trackers["loss"].update_state(loss)
        return {"loss": self._trackers["loss"].result()}

    def test_step(self, data: Any) -> Dict[str, tf.Tensor]:
        images = self.check_images(data[0] if isinstance(data, (tuple, list)) else data)
        values = {"loss": self.flow_matching_loss(images, self.ema_field,
                                                  tf.constant([self.eval_seed, 2]))}
        if self.evaluate_likelihood:
            values["bits_per_dim"] = self.bits_per_dim(images)
        record(self, {k: self._trackers[k] for k in values}, values)
        shown = [self._trackers[k] for k in values] + ([self._nfe] if self.evaluate_likelihood
                                                       else [])
        return {m.name: m.result() for m in shown}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(**self.unet, path=self.probability_path,
                      sigma_min=self.sigma_min, coupling=self.coupling,
                      ot_regularization=self.ot_regularization,
                      ot_iterations=self.ot_iterations, ema_decay=self.ema_decay,
                      trace=self.trace, eval_seed=self.eval_seed,
                      evaluate_likelihood=self.evaluate_likelihood, seed=self.seed,
                      logit_alpha=self.logit_alpha)
        return config
