"""`LatentODE`: the Latent ODE with an ODE-RNN encoder (Rubanova, Chen & Duvenaud
2019) on padded irregularly sampled series, for interpolation.

- Encoder: an `ODERNN` run backwards in time over each row's observed steps, fed
  the reversed series on negated times (−t reversed is non-decreasing): the padding
  after a row's last step comes first, where Δt = 0 and no observation keep h at
  exactly 0, so h starts at the row's last time and ends at its first one.
- q(z0 | x) = N(μ, σ²) from that final state through one linear layer to (μ, log σ).
- Decoder: z(t) = z0 at the row's first time, then dz/dt = g(z) (`ODETrajectory`,
  each row over its own intervals), and a linear layer (or MLP) to the D values
  scaled to [0, 1].
- Loss, the negative ELBO per series averaged over the batch, normalized as the
  authors' code does: the Gaussian log-likelihood (fixed `observation_std`, paper
  0.01) of the observed scaled values, averaged over each variable's observed values
  and then over the D variables (a variable a series never observes counts 0), minus
  KL(q(z0) ‖ N(0, I)) averaged over the latent dimensions. Training draws one z0
  (reparameterized) from the stateless seed (seed, optimizer step).
- Metrics, exact over all batches (each batch's mean weighted by its count):
  `loss` and `kl` per series; the interpolation errors of the observed scaled values
  (every observed value conditions z0 and is reconstructed) `mse`, over all observed
  values alike, and `paper_mse`, the paper's normalization (per series and variable
  over its observed values, 0 for a variable the series never observes, then the
  mean over the D variables, then over the series: the authors'
  `compute_masked_likelihood`). Evaluation takes z0 = the posterior mean for all
  (one decode, no noise).
- `ode-zoo eval` adds the held-out interpolation (`evaluation_metrics`): a seeded
  random half of each series' observed values hidden, predicted from the rest, against
  per-series mean imputation of the same values (`ode_zoo.models.held_out`).

Endpoints `serving_default` and `interpolate`: times, values (raw units), mask →
`prediction` [N, T, D] in raw units at the input times, from the observed values only.
`interpolate_at(inputs, times)` evaluates the same path at other times (a dense grid:
`ode-zoo predict` draws it, `picture` "series_trajectories").

Example:
    >>> model = LatentODE([0.0, 0.0], [1.0, 10.0], units=4, latent_dim=2,
    ...                   encoder_field_units=(4,), decoder_field_units=(4,))
    >>> batch = model.random_examples(3)
    >>> model.interpolate(batch).shape
    TensorShape([3, 5, 2])
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, NamedTuple, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from ode_zoo.layers.ode_rnn import ODERNN, intervals
from ode_zoo.layers.ode_trajectory import ODETrajectory
from ode_zoo.models.batches import has_no_examples
from ode_zoo.models.held_out import (concatenate_statistics, held_out_metrics,
                                     held_out_statistics, hide_half)
from ode_zoo.models.irregular_series import IrregularSeriesModel
from ode_zoo.models.series_inputs import Series
from ode_zoo.models.train_steps import minimize_and_record, record
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.solver import solver_settings

tfd = tfp.distributions

# Each tracker's weight in `loss_terms`: the exact mean over a split, not over batches.
METRIC_WEIGHTS = {"loss": "series", "kl": "series", "mse": "observed", "paper_mse": "series"}
HELD_OUT_SEED = 0          # the generator choosing the hidden half, once per evaluation


def per_variable_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Per row [N] of x, mask [N, T, D]: each variable's mean of x over its observed
    values (0 if none), then the mean over the variables (the paper's normalization)."""
    per_variable = tf.reduce_sum(x * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
    return tf.reduce_mean(per_variable, -1)


class Posterior(NamedTuple):
    """What the encoder makes of a batch: times [N, S] (in `time_unit`s, cut after
    the batch's last real step), scaled values and mask [N, S, D], and q(z0)."""
    times: tf.Tensor
    scaled: tf.Tensor
    mask: tf.Tensor
    z0: tfd.Normal


@keras.saving.register_keras_serializable(package="ode_zoo")
class LatentODE(IrregularSeriesModel):
    """Latent ODE: backward ODE-RNN encoder → q(z0) → ODE decoder → scaled values.

    Args:
      value_minimum, value_maximum, time_unit: see `IrregularSeriesModel`.
      units: the encoder's hidden state (and GRU cell) size.
      latent_dim: the size of z.
      encoder_field_units, decoder_field_units, field_activation: the MLP fields of
        the encoder's dh/dt = f(h) and the decoder's dz/dt = g(z).
      decoder_units, decoder_activation: hidden layers from z to the values (none:
        linear, as in the paper).
      observation_std: the fixed standard deviation of the scaled observations.
      seed: training step k draws z0 from the stateless seed (seed, k).
      solver: the `Solver` of each interval of both ODEs (default rk4, one step per
        interval); its settings may also be keywords.
      **kwargs: `keras.Model` arguments.
    """

    endpoint_name = "interpolate"
    headline_metrics: ClassVar[Tuple[str, ...]] = (
        "test_paper_mse", "test_mse", "test_held_out_paper_mse",
        "test_held_out_mean_imputation_paper_mse")
    picture: ClassVar[Optional[str]] = "series_trajectories"

    def __init__(self, value_minimum: Sequence[float], value_maximum: Sequence[float],
                 time_unit: float = 48.0, units: int = 64, latent_dim: int = 20,
                 encoder_field_units: Sequence[int] = (64, 64),
                 decoder_field_units: Sequence[int] = (64, 64), field_activation: str = "tanh",
                 decoder_units: Sequence[int] = (), decoder_activation: str = "relu",
                 observation_std: float = 0.01, seed: int = 0, solver: SolverLike = None,
                 **kwargs: Any) -> None:
        solver = Solver.resolve(solver, solver_settings(kwargs), ODERNN.default_solver)
        super().__init__(value_minimum, value_maximum, time_unit, **kwargs)
        if int(latent_dim) != latent_dim or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        if not observation_std > 0:
            raise ValueError(f"observation_std must be positive, got {observation_std!r}.")
        self.latent_dim, self.solver = int(latent_dim), solver
        self.observation_std, self.seed = float(observation_std), int(seed)
        self.field_activation, self.decoder_activation = field_activation, decoder_activation
        self.encoder = ODERNN(units, encoder_field_units, field_activation, solver,
                              name="ode_rnn")
        self.posterior_layer = keras.layers.Dense(2 * self.latent_dim, name="posterior")
        self.trajectory = ODETrajectory(decoder_field_units, field_activation, solver,
                                        name="trajectory")
        self.decoder_units = [int(u) for u in decoder_units]
        self.decoder = [keras.layers.Dense(u, activation=decoder_activation, name=f"decoder_{i}")
                        for i, u in enumerate(self.decoder_units)]
        self.decoder.append(keras.layers.Dense(self.num_variables, name="values"))
        self._trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_WEIGHTS}
        self.build_variables()

    def build_variables(self) -> None:
        if self.built:
            return
        self.encoder.build((None, None), (None, None, 2 * self.num_variables), (None, None))
        self.posterior_layer.build((None, self.encoder.units))
        self.trajectory.build((None, self.latent_dim), (None, None))
        shape = (None, self.latent_dim)
        for layer in self.decoder:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    @property
    def metrics(self) -> list:
        return list(self._trackers.values())

    def posterior(self, series: Series) -> Posterior:
        """The encoder's view of a checked batch: the backward ODE-RNN over the
        observed steps, its final state → q(z0) = N(μ, σ²) per row."""
        times, features, observed = self.encoder_inputs(series)
        h = self.encoder(-tf.reverse(times, [1]), tf.reverse(features, [1]),
                         tf.reverse(observed, [1]))
        mean, log_std = tf.split(self.posterior_layer(h), 2, axis=-1)
        d = self.num_variables
        return Posterior(times, features[..., :d], features[..., d:],
                         tfd.Normal(mean, tf.exp(log_std)))

    def decode(self, z0: tf.Tensor, times: tf.Tensor) -> tf.Tensor:
        """Scaled values [N, S, D] at times [N, S] (`time_unit`s) from z0 [N, latent_dim]
        at each row's first time."""
        out = self.trajectory(z0, times)
        for layer in self.decoder:
            out = layer(out)
        return out

    def log_likelihood(self, scaled: tf.Tensor, mask: tf.Tensor,
                       predicted: tf.Tensor) -> tf.Tensor:
        """log N(scaled; predicted, observation_std²) of the observed values per row [N]:
        the mean over each variable's observed values, then over the variables."""
        return per_variable_mean(tfd.Normal(predicted, self.observation_std).log_prob(scaled),
                                 mask)

    def kl(self, z0: tfd.Normal) -> tf.Tensor:
        """KL(q(z0) ‖ N(0, I)) per row [N], averaged over the latent dimensions."""
        prior = tfd.Normal(tf.zeros_like(z0.loc), tf.ones_like(z0.scale))
        return tf.reduce_mean(tfd.kl_divergence(z0, prior), -1)

    def loss_terms(self, inputs: Any, seed: Optional[tf.Tensor]) -> Dict[str, tf.Tensor]:
        """loss (negative ELBO, one z0 drawn from the stateless `seed` [2]) and kl,
        batch means per series; mse and paper_mse of the observed values
        reconstructed from that draw, or from the posterior mean when `seed` is None
        (loss then too); and the counts the means are over, "series" and "observed"."""
        post = self.posterior(self.series(inputs))
        z0 = post.z0.loc
        if seed is not None:
            z0 = z0 + post.z0.scale * tf.random.stateless_normal(tf.shape(z0), seed)
        predicted = self.decode(z0, post.times)
        kl = self.kl(post.z0)
        squared = tf.square(predicted - post.scaled)
        observed = tf.reduce_sum(post.mask)
        return {"loss": tf.reduce_mean(kl - self.log_likelihood(post.scaled, post.mask,
                                                                predicted)),
                "kl": tf.reduce_mean(kl),
                "mse": tf.reduce_sum(squared * post.mask) / tf.maximum(observed, 1.0),
                "paper_mse": tf.reduce_mean(per_variable_mean(squared, post.mask)),
                "series": tf.cast(tf.shape(kl)[0], tf.float32), "observed": observed}

    def interpolate(self, inputs: Any) -> tf.Tensor:
        """Values [N, T, D] in raw units at the input times, from the observed values
        only (z0 the posterior mean); padding steps repeat their row's last step."""
        series = self.series(inputs)
        if has_no_examples(series.times):
            return tf.zeros_like(series.values)
        post = self.posterior(series)
        scaled = self.decode(post.z0.loc, post.times)
        extra = tf.shape(series.times)[1] - tf.shape(post.times)[1]
        scaled = tf.concat([scaled, tf.repeat(scaled[:, -1:], extra, axis=1)], axis=1)
        minimum, span = self.value_scale()
        return scaled * span + minimum

    def interpolate_at(self, inputs: Any, times: Any) -> tf.Tensor:
        """Values [N, G, D] in raw units at `times` [N, G] (hours, non-decreasing along
        a row, none before the row's first input time), from the observed values of
        `inputs` (z0 the posterior mean): the model's continuous path.

        Example:
            >>> model = LatentODE([0.0], [1.0], units=2, latent_dim=2,
            ...                   encoder_field_units=(), decoder_field_units=())
            >>> batch = model.random_examples(2)
            >>> grid = np.linspace(batch["times"][:, :1], 48.0, 7, axis=1)[..., 0]
            >>> model.interpolate_at(batch, grid).shape
            TensorShape([2, 7, 1])
        """
        post = self.posterior(self.series(inputs))
        query = tf.convert_to_tensor(times, tf.float32) / self.time_unit
        path = tf.concat([post.times[:, :1], query], axis=1)
        check = tf.debugging.assert_non_negative(
            intervals(path), message="interpolate_at expects times that never decrease along "
            "a row and none before the row's first input time")
        with tf.control_dependencies([check]):
            scaled = self.decode(post.z0.loc, path)[:, 1:]
        minimum, span = self.value_scale()
        return scaled * span + minimum

    def predict_hidden(self, inputs: Dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
        """Scaled values [N, T, D] at the input times predicted from the observed values
        outside `hidden` [N, T, D] (0 and 1) only: the hidden ones are never read."""
        visible = inputs["mask"] * (1.0 - hidden)
        shown = {"times": inputs["times"], "mask": visible,
                 "values": np.where(visible > 0, inputs["values"], 0.0).astype(np.float32)}
        minimum, span = (t.numpy() for t in self.value_scale())
        raw = self.predict(shown, batch_size=len(visible), verbose=0)
        return (raw - minimum) / span

    def evaluation_metrics(self, data: tf.data.Dataset, split: str) -> Dict[str, float]:
        """Held-out interpolation on `data`'s series in order (`ode_zoo.models.held_out`):
        half of each series' observed values hidden (generator seeded with
        `HELD_OUT_SEED`), predicted from the rest (`predict_hidden`), against mean
        imputation; scaled values, keys prefixed by `split`."""
        rng, parts = np.random.default_rng(HELD_OUT_SEED), []
        minimum, span = (t.numpy() for t in self.value_scale())
        for batch in data.as_numpy_iterator():
            inputs = batch[0] if isinstance(batch, tuple) else batch
            hidden = hide_half(inputs["mask"], rng)
            scaled = (inputs["values"] - minimum) / span * inputs["mask"]
            parts.append(held_out_statistics(scaled, inputs["mask"] - hidden, hidden,
                                             self.predict_hidden(inputs, hidden)))
        metrics = held_out_metrics(concatenate_statistics(parts))
        return {f"{split}_{name}": value for name, value in metrics.items()}

    def call(self, inputs: Any) -> tf.Tensor:
        return self.interpolate(inputs)

    def endpoint_outputs(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        return {"prediction": self.interpolate(inputs)}

    def output_tolerance(self, output: Optional[str] = None) -> Tuple[float, float]:
        """Raw units reach ~2e4 (PhysioNet's platelets, urine): float32 round-off
        relative to the range, not to 1."""
        return 1e-4, 1e-2

    def train_step(self, data: Any) -> Dict[str, tf.Tensor]:
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        with tf.GradientTape() as tape:
            terms = self.loss_terms(inputs, seed)
        return minimize_and_record(self, tape, terms["loss"], self._trackers, terms,
                                   _weights(terms))

    def test_step(self, data: Any) -> Dict[str, tf.Tensor]:
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        terms = self.loss_terms(inputs, None)
        return record(self, self._trackers, terms, _weights(terms))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(units=self.encoder.units, latent_dim=self.latent_dim,
                      encoder_field_units=list(self.encoder.field.hidden_units),
                      decoder_field_units=list(self.trajectory.field.hidden_units),
                      field_activation=self.field_activation,
                      decoder_units=list(self.decoder_units),
                      decoder_activation=self.decoder_activation,
                      observation_std=self.observation_std, seed=self.seed,
                      solver=self.solver.get_config())
        return config


def _weights(terms: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Each tracker's weight: the count its batch mean is over (`METRIC_WEIGHTS`)."""
    return {name: terms[count] for name, count in METRIC_WEIGHTS.items()}
