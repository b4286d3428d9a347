"""`FFJORDImageFlow`: FFJORD's multiscale continuous normalizing flow on 8-bit
images (Grathwohl et al. 2019) with RNODE's regularized training (Finlay et al. 2020).

The likelihood of a discrete image x ∈ {0, …, 255}^D (D = H·W·C):

    u = (x + v) / 256, v ~ U[0, 1)^D        uniform dequantization, log-det −D·log 256
    y = logit(α + (1 − 2α)·u)                logit transform, log-det Σ log|dy/du|
    z = encode(y)                            `MultiscaleFlow` of `FFJORD` blocks
    log p(x) = log N(z; 0, I) + log|det ∂z/∂y| + log|det ∂y/∂u| − D·log 256
    bits/dim = −log p(x) / (D·ln 2)

(one dequantization draw: a stochastic lower bound of log P(x), as FFJORD and
RNODE report it). Each block's Jacobian trace is Hutchinson's estimate (an exact
trace costs D vector–Jacobian products per evaluation): training draws fresh
noise per solve; evaluation fixes the dequantization noise to the stateless seed
(eval_seed, 0) and block i's trace noise to (eval_seed, i + 1), so the same
batches give the same numbers.

Example:
    >>> import tensorflow as tf
    >>> model = FFJORDImageFlow(image_shape=(4, 4, 1), num_scales=1, blocks_per_scale=1,
    ...                         hidden_filters=(4,), num_steps=1,
    ...                         eval_solver={"method": "rk4", "num_steps": 1})
    >>> model.bits_per_dim(tf.zeros((2, 4, 4, 1))).shape
    TensorShape([2])
    >>> model.sample(tf.zeros((3, 16))).shape
    TensorShape([3, 4, 4, 1])
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import keras
import tensorflow as tf

from ode_zoo.flows.dequantization import bits_per_dim, quantize, uniform_dequantize
from ode_zoo.flows.logit_transform import check_alpha, inverse_logit_transform, logit_transform
from ode_zoo.flows.gaussian import standard_normal_log_prob
from ode_zoo.flows.multiscale import MultiscaleFlow, scale_shapes
from ode_zoo.layers.ode_block import EvaluationCount
from ode_zoo.layers.vector_fields import FlatImageVectorField
from ode_zoo.models.flow import ImageFlowModel
from ode_zoo.models.train_steps import minimize_and_record
from ode_zoo.solvers import Solver, SolverLike


@keras.saving.register_keras_serializable(package="ode_zoo")
class FFJORDImageFlow(ImageFlowModel):
    """A multiscale continuous normalizing flow of 8-bit images over a standard normal.

    Every scale squeezes (H, W, C) → (H/2, W/2, 4C), runs `blocks_per_scale`
    FFJORD blocks (each with its own `FlatImageVectorField`, started at zero so
    a new model is the identity), and all but the last scale factor out half the
    channels (`ode_zoo.flows.multiscale`). MNIST with 2 scales: blocks on
    14×14×4, then on 7×7×8.

    Args:
      image_shape: (H, W, C); H and W divisible by 2**num_scales.
      num_scales, blocks_per_scale: the multiscale layout.
      hidden_filters, activation: each block's `FlatImageVectorField`.
      trace: "hutchinson_rademacher" (default), "hutchinson_gaussian", or "exact"
        (only for tiny images).
      kinetic_weight, jacobian_weight: RNODE's λ_K and λ_J (default 0.01 each).
      logit_alpha: α of the logit transform (default 1e-6, FFJORD's).
      t1: end time of every block (they start at 0).
      solver: the training `Solver` (default RK4, 4 steps, i.e. RNODE's step 0.25,
        backpropagated through the solver: on CPU at MNIST sizes it costs 20–40%
        less CPU time per step than the adjoint, see
        benchmarks/ffjord_image_throughput.py); its settings may also be keywords.
      eval_solver: the `Solver` of `log_prob`, `bits_per_dim`, `sample` and
        `evaluate` (default dopri5 at 1e-5).
      eval_seed: seed of the evaluation noise (dequantization and trace).

    Training minimizes bits/dim + λ_K·kinetic + λ_J·jacobian with RNODE's
    per-dimension regularizers: kinetic = ½·Σ_blocks ∫‖f‖² dt / D and
    jacobian = Σ_blocks ∫‖εᵀ∂f/∂z‖² dt / D, batch means. `fit` reports loss,
    bits_per_dim, kinetic, jacobian, nfe (mean evaluations per block solve) and,
    with an adjoint, backward_nfe; `evaluate` reports bits_per_dim and nfe under
    the evaluation solver.
    """

    default_solver = Solver("rk4", num_steps=4)

    def __init__(self, image_shape: Sequence[int] = (28, 28, 1), num_scales: int = 2,
                 blocks_per_scale: int = 2, hidden_filters: Sequence[int] = (64, 64, 64),
                 activation: str = "softplus", trace: str = "hutchinson_rademacher",
                 kinetic_weight: float = 0.01, jacobian_weight: float = 0.01,
                 logit_alpha: float = 1e-6, t1: float = 1.0, solver: SolverLike = None,
                 eval_solver: SolverLike = None, eval_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(image_shape=image_shape, solver=solver, eval_solver=eval_solver,
                         **kwargs)
        shapes = scale_shapes(self.image_shape, num_scales)
        if int(blocks_per_scale) != blocks_per_scale or blocks_per_scale < 1:
            raise ValueError(f"blocks_per_scale must be a positive integer, got "
                             f"{blocks_per_scale!r}.")
        if kinetic_weight < 0 or jacobian_weight < 0:
            raise ValueError(f"kinetic_weight and jacobian_weight must be >= 0, got "
                             f"{kinetic_weight}, {jacobian_weight}.")
        self.num_scales, self.blocks_per_scale = int(num_scales), int(blocks_per_scale)
        self.hidden_filters = tuple(int(f) for f in hidden_filters)
        self.activation, self.trace = activation, trace
        self.kinetic_weight, self.jacobian_weight = float(kinetic_weight), float(jacobian_weight)
        self.logit_alpha = check_alpha(logit_alpha)
        self.t1, self.eval_seed = float(t1), int(eval_seed)
        self.fields = [FlatImageVectorField(shape, self.hidden_filters, activation,
                                            name=f"field_{scale}_{block}")
                       for scale, shape in enumerate(shapes)
                       for block in range(self.blocks_per_scale)]
        for field in self.fields:
            field.build((), (None, field.dim))
        self.built = True                   # every weight exists: the fields are built
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "bits_per_dim", "kinetic", "jacobian")}
        self._nfe = EvaluationCount(name="nfe")
        self._backward_nfe = (None if self.solver.adjoint is False
                              else EvaluationCount(name="backward_nfe"))
        self._flows = {"train": self._multiscale(self._training_blocks()),
                       "eval": self._multiscale(self._evaluation_blocks())}

    def _training_blocks(self) -> list:
        """One regularized FFJORD per field with the training solver (fresh noise per solve)."""
        return [self.flow(field, self.solver, trace=self.trace, t1=self.t1, regularize=True,
                          stats_sink=self._nfe, backward_stats_sink=self._backward_nfe)
                for field in self.fields]

    def _evaluation_blocks(self) -> list:
        """One FFJORD per field with the evaluation solver; block i's trace noise is
        seeded with (eval_seed, i + 1)."""
        return [self.flow(field, self.eval_solver, trace=self.trace, t1=self.t1,
                          seed=tf.constant([self.eval_seed, i + 1], tf.int64),
                          stats_sink=self._nfe)
                for i, field in enumerate(self.fields)]

    def _multiscale(self, blocks: list) -> MultiscaleFlow:
        per_scale = self.blocks_per_scale
        return MultiscaleFlow(self.image_shape, [blocks[s * per_scale:(s + 1) * per_scale]
                                                 for s in range(self.num_scales)])

    @property
    def metrics(self) -> list:
        sinks = [self._nfe] + ([] if self._backward_nfe is None else [self._backward_nfe])
        return list(self._trackers.values()) + sinks

    def call(self, images: tf.Tensor) -> tf.Tensor:
        return self.log_prob(images)

    def checked_log_prob(self, images: tf.Tensor) -> tf.Tensor:
        """log P(x) in nats [N] of raw-pixel images [N, H, W, C] (float32, integers
        0–255, checked by `log_prob`): one seeded dequantization draw, the evaluation
        solver.

        Example:
            >>> import tensorflow as tf
            >>> model = FFJORDImageFlow(image_shape=(2, 2, 1), num_scales=1,
            ...                         hidden_filters=(2,),
            ...                         eval_solver={"method": "rk4", "num_steps": 1})
            >>> model.log_prob(tf.fill((1, 2, 2, 1), 7.0)).dtype
            tf.float32
        """
        noise = tf.random.stateless_uniform(tf.shape(images), [self.eval_seed, 0])
        return self._log_prob(images, noise, training=False)[0]

    def checked_sample(self, z: tf.Tensor) -> tf.Tensor:
        """Images [N, H, W, C] (float32 integers 0–255) from base noise z [N, D]
        (checked by `sample`):
        decoded by the evaluation solver, inverse logit, then ⌊256·u⌋ clipped to
        0–255 (the inverse of the dequantization; the clip only catches numerical
        error at the edges).

        Example:
            >>> import tensorflow as tf
            >>> model = FFJORDImageFlow(image_shape=(2, 2, 1), num_scales=1,
            ...                         hidden_filters=(2,),
            ...                         eval_solver={"method": "rk4", "num_steps": 1})
            >>> model.sample(tf.zeros((1, 4))).numpy().ravel().tolist()   # logit 0 -> u = 0.5
            [128.0, 128.0, 128.0, 128.0]
        """
        y = self._flows["eval"].decode(z)
        return quantize(inverse_logit_transform(y, self.logit_alpha))

    def train_step(self, data: Any) -> Dict[str, tf.Tensor]:
        images = self.check_images(data[0] if isinstance(data, (tuple, list)) else data)
        noise = tf.random.uniform(tf.shape(images))
        with tf.GradientTape() as tape:
            log_prob, kinetic, jacobian = self._log_prob(images, noise, training=True)
            bpd = bits_per_dim(log_prob, self.dim)
            loss = (tf.reduce_mean(bpd) + self.kinetic_weight * kinetic
                    + self.jacobian_weight * jacobian)
        return minimize_and_record(self, tape, loss, self._trackers, dict(
            loss=loss, bits_per_dim=bpd, kinetic=kinetic, jacobian=jacobian))

    def test_step(self, data: Any) -> Dict[str, tf.Tensor]:
        images = self.check_images(data[0] if isinstance(data, (tuple, list)) else data)
        self._trackers["bits_per_dim"].update_state(self.bits_per_dim(images))
        return {m.name: m.result() for m in (self._trackers["bits_per_dim"], self._nfe)}

    def _log_prob(self, images: tf.Tensor, noise: tf.Tensor,
                  training: bool) -> Tuple[tf.Tensor, ...]:
        """log P(x) [N] for dequantization `noise`; with `training`, the training
        solver and the batch means of RNODE's per-dimension kinetic and jacobian."""
        u, dequantize_log_det = uniform_dequantize(images, noise)
        y, logit_log_det = logit_transform(u, self.logit_alpha)
        flow = self._flows["train" if training else "eval"]
        if training:
            result = flow.encode_with_regularizers(y)
            latent, flow_log_det = result.output, result.log_det_jacobian
        else:
            latent, flow_log_det = flow.encode(y)
        log_prob = (standard_normal_log_prob(latent) + flow_log_det + logit_log_det
                    + dequantize_log_det)
        if not training:
            return (log_prob,)
        return (log_prob, 0.5 * tf.reduce_mean(result.kinetic) / self.dim,
                tf.reduce_mean(result.jacobian) / self.dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_scales=self.num_scales,
                      blocks_per_scale=self.blocks_per_scale,
                      hidden_filters=list(self.hidden_filters), activation=self.activation,
                      trace=self.trace, kinetic_weight=self.kinetic_weight,
                      jacobian_weight=self.jacobian_weight, logit_alpha=self.logit_alpha,
                      t1=self.t1, eval_seed=self.eval_seed)
        return config
