"""`ODE2VAE` (Yildiz, Heinonen, Lähdesmäki 2019): a VAE for sequences whose latent
state z = (s, v) — position and velocity — follows a second-order ODE
ds/dt = v, dv/dt = f_W(s, v) with a Bayesian neural network f_W.

Generative story and inference, per sequence x_0:T−1 (frame k at time k·dt):
  - q_enc(s_0 | x_0) and q_enc(v_0 | x_0:m) are diagonal Gaussians (m =
    `amortization_length` frames stacked for the velocity);
  - W ~ q(W) = N(mean, diag(variance)) (`BayesianMLP`), prior p(W) = N(0, I);
  - the ODE carries a sample z_0 to z_t, and with `track_density` also its
    log-density: d log q/dt = −Tr(∂f_W/∂v) (exact trace, see `mlp_with_trace`);
  - frames are decoded from s_t alone: Bernoulli pixels for images, a Gaussian
    for vectors.

Loss per sequence (Monte Carlo over `num_samples` draws of W and z_0, batch mean):
  loss = nll + kl_z + β·kl_w + γ·kl_enc, where
  - nll = −Σ_t log p(x_t | s_t);
  - kl_z = Σ_t [log q(z_t) − log N(z_t; 0, I)] — the latent KL at every frame,
    as in the authors' implementation;
  - kl_w = KL(q(W) ‖ p(W)), closed form. The BNN's KL is a data-set-level term;
    the paper weights it by β = |q|/|W| (latent dimension over the number of
    BNN weights and biases), i.e. q times the mean KL per weight, where a
    minibatch estimate of the full ELBO would use 1/N_train. `bnn_kl_weight`
    sets β explicitly (e.g. 1/N_train); None keeps the paper's |q|/|W|;
  - kl_enc = Σ_{t ≤ T−m} [log q(z_t) − log q_enc(z_t | x_t, x_t:t+m)] — the
    ODE2VAE-KL term that ties the ODE-propagated latent distribution to the
    encoder's at every frame it can encode, weighted by γ (`gamma`; 0 turns it off).
  Without `track_density`, log q(z_t) is taken as log q(z_0): exact when f_W
  does not depend on v (the flow then preserves volume), cheaper otherwise.

Inputs: images as raw pixels 0–255, float [N, T, H, W, C]; vectors (mocap)
float [N, T, D]. `reconstruct` (also `model(x)`) predicts every frame from the
first m frames alone, with posterior means of z_0 and W, on the inputs' scale.

Training backpropagates through the solver (`odeint` without adjoint), meant
for fixed-step RK4 over the short frame grids here.

Example:
    >>> import numpy as np
    >>> model = ODE2VAE(data_shape=(6,), latent_dim=2, bnn_units=(8,), coder_units=(8,))
    >>> x = np.random.default_rng(0).normal(size=(3, 5, 6)).astype("float32")
    >>> model.reconstruct(x).shape
    TensorShape([3, 5, 6])
    >>> sorted(model.loss_terms(x, seed=[0, 1]))
    ['kl_enc', 'kl_w', 'kl_z', 'loss', 'mse', 'nll']
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from ode_zoo.flows.gaussian import standard_normal_log_prob
from ode_zoo.layers.bayesian_mlp import BayesianMLP, check_activation, mlp_with_trace
from ode_zoo.models.batches import has_no_examples
from ode_zoo.models.sequence_model import SequenceModel
from ode_zoo.models.ode2vae_networks import dense_network, image_decoder, image_encoder
from ode_zoo.models.train_steps import minimize_and_record, record
from ode_zoo.models.pixel_inputs import check_pixel_images
from ode_zoo.solvers import Solver, SolverLike, odeint
from ode_zoo.solvers.solver import solver_settings

tfd = tfp.distributions
METRICS = ("loss", "nll", "kl_z", "kl_w", "kl_enc", "mse")


def _check_args(data_shape: Tuple[int, ...], latent_dim: int, amortization_length: int,
                gamma: float, num_samples: int, frame_interval: float,
                decoder_std: Optional[float], bnn_kl_weight: Optional[float]) -> None:
    """Raise a `ValueError` naming the accepted values of a bad constructor argument."""
    if len(data_shape) not in (1, 3) or min(data_shape) < 1:
        raise ValueError(f"data_shape must be (H, W, C) for images or (D,) for vectors, got "
                         f"{data_shape}.")
    if len(data_shape) == 3 and (data_shape[0] % 4 or data_shape[1] % 4):
        raise ValueError(f"image height and width must be multiples of 4, got {data_shape}.")
    if len(data_shape) == 3 and decoder_std is not None:
        raise ValueError("decoder_std applies to vector data (Gaussian decoder); images use "
                         "a Bernoulli decoder: leave it None.")
    for name, value in (("latent_dim", latent_dim), ("amortization_length", amortization_length),
                        ("num_samples", num_samples)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    for name, value in (("gamma", gamma), ("bnn_kl_weight", bnn_kl_weight)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}.")
    for name, value in (("frame_interval", frame_interval), ("decoder_std", decoder_std)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")


@keras.saving.register_keras_serializable(package="ode_zoo")
class ODE2VAE(SequenceModel):
    """Second-order latent ODE VAE with a Bayesian acceleration field.

    Args:
      data_shape: (H, W, C) for images (convolutional coders, Bernoulli pixels;
        H and W multiples of 4) or (D,) for vectors (MLP coders, Gaussian).
      latent_dim: q, the size of the position s and of the velocity v.
      amortization_length: m, the frames the velocity encoder reads.
      bnn_units, bnn_activation, bnn_initial_variance: f_W's hidden layers,
        activation ("tanh", "relu", "softplus", "sigmoid") and starting
        posterior variance.
      encoder_filters, decoder_filters, kernel_size: image coders' widths.
      coder_units, coder_activation: vector coders' hidden layers.
      decoder_std: vectors only: the Gaussian decoder's fixed standard
        deviation; None learns one shared log standard deviation (from 0).
      gamma: γ, weight of kl_enc.
      bnn_kl_weight: β; None for the paper's latent_dim / |W|.
      track_density: integrate d log q/dt = −Tr(∂f_W/∂v) along the latent path.
      num_samples: Monte Carlo draws of (W, z_0) per batch in the loss.
      frame_interval: dt, the time between frames.
      solver: the `Solver` of the latent ODE (default RK4 with step 0.05,
        backpropagated; an adaptive method without a step size for error
        control); its settings may also be given as keywords.
      seed: seed of the training noise (`keras.random.SeedGenerator`).
      **kwargs: `keras.Model` arguments.

    `fit` and `evaluate` report loss, nll, kl_z, kl_w, kl_enc (see the module
    docstring) and mse — the squared error of frames m.. on the scale [0, 1] for
    images and the data's own for vectors; in `fit` of the sampled path's
    decoded means, in `evaluate` of `reconstruct`. `evaluate` draws its Monte Carlo
    noise from one fixed seed, so it reproduces its numbers.
    """

    default_solver = Solver("rk4", step_size=0.05)

    def __init__(self, data_shape: Sequence[int] = (28, 28, 1), latent_dim: int = 20,
                 amortization_length: int = 3, bnn_units: Sequence[int] = (50, 50),
                 bnn_activation: str = "relu", bnn_initial_variance: float = 1e-4,
                 encoder_filters: int = 8, decoder_filters: int = 16, kernel_size: int = 5,
                 coder_units: Sequence[int] = (30, 30), coder_activation: str = "tanh",
                 decoder_std: Optional[float] = None, gamma: float = 0.1,
                 bnn_kl_weight: Optional[float] = None, track_density: bool = True,
                 num_samples: int = 1, frame_interval: float = 0.1,
                 solver: SolverLike = None, seed: int = 0, **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), self.default_solver)
        super().__init__(**kwargs)
        if solver.adjoint is not False:
            raise ValueError("ODE2VAE backpropagates through its solver: adjoint must be False.")
        data_shape = tuple(int(d) for d in data_shape)
        _check_args(data_shape, latent_dim, amortization_length, gamma, num_samples,
                    frame_interval, decoder_std, bnn_kl_weight)
        check_activation(bnn_activation)
        self.data_shape, self.latent_dim = data_shape, int(latent_dim)
        self.amortization_length = int(amortization_length)
        self.gamma, self.track_density = float(gamma), bool(track_density)
        self.bnn_kl_weight = None if bnn_kl_weight is None else float(bnn_kl_weight)
        self.num_samples, self.frame_interval = int(num_samples), float(frame_interval)
        self.decoder_std = None if decoder_std is None else float(decoder_std)
        self.seed = int(seed)
        self.architecture = dict(
            bnn_units=[int(u) for u in bnn_units], bnn_activation=bnn_activation,
            bnn_initial_variance=float(bnn_initial_variance), encoder_filters=int(encoder_filters),
            decoder_filters=int(decoder_filters), kernel_size=int(kernel_size),
            coder_units=[int(u) for u in coder_units], coder_activation=coder_activation)
        self.solver = solver
        self._build_networks()
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="training_noise")
        self.built = True                       # every weight exists: the networks are built
        self._trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}

    def _build_networks(self) -> None:
        a, q, m = self.architecture, self.latent_dim, self.amortization_length
        if self.is_image:
            size, channels = self.data_shape[:2], self.data_shape[2]
            coder = dict(filters=a["encoder_filters"], kernel_size=a["kernel_size"])
            self.position_encoder = image_encoder(size, channels, q, name="position_encoder",
                                                  **coder)
            self.velocity_encoder = image_encoder(size, m * channels, q, name="velocity_encoder",
                                                  **coder)
            self.decoder = image_decoder(self.data_shape, q, a["decoder_filters"],
                                         a["kernel_size"], name="decoder")
        else:
            dim, coder = self.data_shape[0], dict(hidden_units=a["coder_units"],
                                                  activation=a["coder_activation"])
            self.position_encoder = dense_network(dim, 2 * q, name="position_encoder", **coder)
            self.velocity_encoder = dense_network(m * dim, 2 * q, name="velocity_encoder",
                                                  **coder)
            self.decoder = dense_network(q, dim, name="decoder", **coder)
            if self.decoder_std is None:
                self.decoder_log_std = self.add_weight(shape=(), initializer="zeros",
                                                       name="decoder_log_std")
        self.acceleration = BayesianMLP(2 * q, q, a["bnn_units"], a["bnn_activation"],
                                        a["bnn_initial_variance"], name="acceleration")

    @property
    def is_image(self) -> bool:
        """True for image data (H, W, C); False for vectors (D,)."""
        return len(self.data_shape) == 3

    @property
    def beta(self) -> float:
        """β, the weight of kl_w: `bnn_kl_weight`, else latent_dim / |W|."""
        if self.bnn_kl_weight is not None:
            return self.bnn_kl_weight
        return self.latent_dim / self.acceleration.num_weights

    @property
    def metrics(self) -> list:
        return list(self._trackers.values())

    # --- inputs -------------------------------------------------------------------------

    def _observations(self, sequences: Any) -> tf.Tensor:
        """Checked sequences [N, T, *data_shape] (float, finite, T >= m, pixels 0–255) as
        the likelihood's observations: images scaled to [0, 1], vectors as they are."""
        m = self.amortization_length
        if self.is_image:
            x = check_pixel_images(sequences, self.data_shape, "ODE2VAE", leading="N, T, ")
        else:
            x = tf.convert_to_tensor(sequences)
            if not x.dtype.is_floating:
                raise TypeError(f"ODE2VAE expects float sequences, got {x.dtype.name}; cast "
                                "them with tf.cast(x, tf.float32).")
            dims = ", ".join(map(str, self.data_shape))
            if x.shape.rank != 3 or tuple(x.shape[2:]) != self.data_shape:
                raise ValueError(f"ODE2VAE expects sequences of shape [N, T, {dims}], got "
                                 f"{x.shape}.")
            x = tf.debugging.assert_all_finite(x, "ODE2VAE: sequences contain NaN or inf.")
        if x.shape[1] is not None and x.shape[1] < m:
            raise ValueError(f"Sequences need at least amortization_length = {m} frames, got "
                             f"{x.shape[1]}.")
        x = tf.cast(x, self.compute_dtype)
        with tf.control_dependencies([tf.debugging.assert_greater_equal(
                tf.shape(x)[1], m,
                message=f"ODE2VAE: sequences need at least amortization_length = {m} frames.")]):
            x = tf.identity(x)
        return x / 255.0 if self.is_image else x

    # --- the parts of the model -----------------------------------------------------------

    def _encode(self, x: tf.Tensor, num_windows: Any) -> Tuple[tfd.Normal, tfd.Normal]:
        """q_enc(s_t | x_t) and q_enc(v_t | x_t:t+m) for t < num_windows, as Normals of
        batch shape [N, num_windows, q], from observations x (scaled)."""
        m, q, n = self.amortization_length, self.latent_dim, tf.shape(x)[0]
        windows = tf.signal.frame(x[:, :num_windows + m - 1], m, 1, axis=1)  # [N, W, m, ...]
        if self.is_image:                       # the m frames become channels
            windows = tf.transpose(windows, [0, 1, 3, 4, 2, 5])
            height, width, channels = self.data_shape
            windows = tf.reshape(windows, [-1, height, width, m * channels])
        else:
            windows = tf.reshape(windows, [-1, m * self.data_shape[0]])
        firsts = tf.reshape(x[:, :num_windows], (-1,) + self.data_shape)

        def gaussian(params: tf.Tensor) -> tfd.Normal:
            mean, log_variance = tf.split(tf.reshape(params, [n, -1, 2 * q]), 2, axis=-1)
            return tfd.Normal(mean, tf.exp(0.5 * log_variance))

        return gaussian(self.position_encoder(firsts)), gaussian(self.velocity_encoder(windows))

    def _integrate(self, s0: tf.Tensor, v0: tf.Tensor, weights: list, num_frames: Any,
                   log_q0: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, ...]:
        """The latent path at the frame times from z_0 = (s0, v0) [L, N, q] under weight
        sets `weights` ([L, ...] or [1, ...]): s_t, v_t [L, N, T, q] and, given log_q0
        [L, N], log q(z_t) [L, N, T] (else None)."""
        q, activation = self.latent_dim, self.architecture["bnn_activation"]
        with_density = log_q0 is not None

        def field(t: tf.Tensor, state: tuple) -> tuple:
            s, v = state[0], state[1]
            acceleration, trace = mlp_with_trace(weights, tf.concat([s, v], axis=-1), activation,
                                                 trace_start=q if with_density else None)
            return (v, acceleration, -trace) if with_density else (v, acceleration)

        times = tf.range(num_frames, dtype=s0.dtype) * self.frame_interval
        state = (s0, v0, log_q0) if with_density else (s0, v0)
        path = odeint(field, state, times, self.solver)
        s, v = (tf.transpose(p, [1, 2, 0, 3]) for p in path[:2])
        return s, v, tf.transpose(path[2], [1, 2, 0]) if with_density else None

    def _decode(self, s: tf.Tensor) -> tf.Tensor:
        """Decoder outputs (image logits or vector means) [..., *data_shape] of s [..., q]."""
        out = self.decoder(tf.reshape(s, [-1, self.latent_dim]))
        return tf.reshape(out, tf.concat([tf.shape(s)[:-1], self.data_shape], axis=0))

    def _mean_prediction(self, decoded: tf.Tensor) -> tf.Tensor:
        """The decoder's mean on the scaled observations' scale."""
        return tf.sigmoid(decoded) if self.is_image else decoded

    def _log_likelihood(self, x: tf.Tensor, decoded: tf.Tensor) -> tf.Tensor:
        """log p(x | s) summed over frames and data dims: [L, N] from x [N, T, ...]."""
        x = tf.broadcast_to(x, tf.shape(decoded))
        if self.is_image:
            log_p = -tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=decoded)
        else:
            std = self.decoder_std if self.decoder_std is not None else tf.exp(
                self.decoder_log_std)
            log_p = tfd.Normal(decoded, std).log_prob(x)
        return tf.reduce_sum(tf.reshape(log_p, tf.concat([tf.shape(log_p)[:2], [-1]], 0)), -1)

    # --- loss and prediction -------------------------------------------------------------

    # Plain Python control flow only: autograph's conversion would multiply tracing time.
    @tf.autograph.experimental.do_not_convert
    def loss_terms(self, sequences: Any, seed: Any) -> Dict[str, tf.Tensor]:
        """The loss and its terms (batch means per sequence; see the module docstring)
        for sequences [N, T, *data_shape], with the stateless `seed` (shape [2])."""
        x = self._observations(sequences)
        num_frames, m = tf.shape(x)[1], self.amortization_length
        num_windows = num_frames - m + 1 if self.gamma > 0 else 1
        q_s, q_v = self._encode(x, num_windows)
        seed_s, seed_v, seed_w = tfp.random.split_seed(tf.cast(seed, tf.int32), n=3)
        q_s0, q_v0 = (tfd.Normal(d.loc[:, 0], d.scale[:, 0]) for d in (q_s, q_v))
        s0 = q_s0.sample(self.num_samples, seed=seed_s)                           # [L, N, q]
        v0 = q_v0.sample(self.num_samples, seed=seed_v)
        log_q0 = tf.reduce_sum(q_s0.log_prob(s0), -1) + tf.reduce_sum(q_v0.log_prob(v0), -1)
        weights = self.acceleration.sample_weights(self.num_samples, seed_w)
        s, v, log_q = self._integrate(s0, v0, weights, num_frames,
                                      log_q0 if self.track_density else None)
        if log_q is None:
            log_q = tf.repeat(log_q0[..., None], num_frames, axis=-1)
        decoded = self._decode(s)
        log_prior = standard_normal_log_prob(s) + standard_normal_log_prob(v)   # [L, N, T]
        terms = {
            "nll": -tf.reduce_mean(self._log_likelihood(x, decoded)),
            "kl_z": tf.reduce_mean(tf.reduce_sum(log_q - log_prior, -1)),
            "kl_w": self.acceleration.kl_divergence(),
            "kl_enc": tf.zeros([], x.dtype),
        }
        if self.gamma > 0:
            log_q_enc = (tf.reduce_sum(q_s.log_prob(s[:, :, :num_windows]), -1)
                         + tf.reduce_sum(q_v.log_prob(v[:, :, :num_windows]), -1))
            terms["kl_enc"] = tf.reduce_mean(tf.reduce_sum(
                log_q[:, :, :num_windows] - log_q_enc, -1))
        terms["loss"] = (terms["nll"] + terms["kl_z"] + self.beta * terms["kl_w"]
                         + self.gamma * terms["kl_enc"])
        error = self._mean_prediction(decoded)[:, :, m:] - x[:, m:]
        terms["mse"] = tf.reduce_mean(tf.square(error))
        return terms

    @tf.autograph.experimental.do_not_convert
    def reconstruct(self, sequences: Any) -> tf.Tensor:
        """Every frame [N, T, *data_shape] predicted from the first m frames only (the
        posterior means of z_0 and W), on the inputs' scale (0–255 for images); a
        batch of no examples gives an empty result.

        Example:
            >>> import numpy as np
            >>> model = ODE2VAE(data_shape=(8, 8, 1), latent_dim=2, bnn_units=(4,),
            ...                 encoder_filters=2, decoder_filters=2)
            >>> frames = model.reconstruct(np.zeros((1, 4, 8, 8, 1), "float32"))
            >>> frames.shape, bool(0 <= frames.numpy().min() <= frames.numpy().max() <= 255)
            (TensorShape([1, 4, 8, 8, 1]), True)
        """
        x = self._observations(sequences)
        if has_no_examples(x):
            return tf.zeros_like(x)
        q_s, q_v = self._encode(x[:, :self.amortization_length], 1)
        s, _, _ = self._integrate(q_s.loc[None, :, 0], q_v.loc[None, :, 0],
                                  self.acceleration.mean_weights(), tf.shape(x)[1])
        prediction = self._mean_prediction(self._decode(s[0]))
        return prediction * 255.0 if self.is_image else prediction

    def output_tolerance(self, output: Optional[str] = None) -> Tuple[float, float]:
        """Round-off grows along the latent integration: over mocap's 300 frames (600
        rk4 steps) Keras and its serving export differ by up to 4e-5 on values of
        standard deviation 5.8, so absolute differences up to 1e-3 are allowed."""
        return 1e-4, 1e-3

    def call(self, sequences: Any) -> tf.Tensor:
        return self.reconstruct(sequences)

    # --- Keras training -------------------------------------------------------------------

    def train_step(self, data: Any) -> Dict[str, tf.Tensor]:
        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            terms = self.loss_terms(x, self.seed_generator.next())
        return minimize_and_record(self, tape, terms["loss"], self._trackers, terms)

    def test_step(self, data: Any) -> Dict[str, tf.Tensor]:
        x = data[0] if isinstance(data, (tuple, list)) else data
        # One fixed noise seed: an evaluation reproduces its numbers exactly.
        terms = self.loss_terms(x, tf.constant([self.seed, 1]))
        m = self.amortization_length
        error = self.reconstruct(x)[:, m:] - tf.cast(x, self.compute_dtype)[:, m:]
        terms["mse"] = tf.reduce_mean(tf.square(error / 255.0 if self.is_image else error))
        return record(self, self._trackers, terms)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(data_shape=list(self.data_shape), latent_dim=self.latent_dim,
                      amortization_length=self.amortization_length, decoder_std=self.decoder_std,
                      gamma=self.gamma, bnn_kl_weight=self.bnn_kl_weight,
                      track_density=self.track_density, num_samples=self.num_samples,
                      frame_interval=self.frame_interval, seed=self.seed,
                      solver=self.solver.get_config(), **self.architecture)
        return config
