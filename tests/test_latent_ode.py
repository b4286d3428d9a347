"""The Latent ODE (`LatentODE`, `ODETrajectory`): padding and unobserved values change
nothing, the backward encoder, the KL and the likelihood against numpy, the paper's
toy of irregularly sampled sine waves interpolated after seconds of training, and
the latent_ode_physionet recipe. The zoo harness row is in test_model_families.py."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.layers import ODETrajectory
from ode_zoo.models import LatentODE
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.recipes import build_model
from test_ode_rnn import pad

RK4_1 = {"method": "rk4", "num_steps": 1}


def tiny_model(**overrides) -> LatentODE:
    keras.utils.set_random_seed(0)
    settings = dict(units=6, latent_dim=3, encoder_field_units=(8,), decoder_field_units=(8,),
                    time_unit=10.0, solver=RK4_1)
    model = LatentODE([-1.0, 0.0, 10.0], [1.0, 5.0, 30.0], **{**settings, **overrides})
    rng = np.random.default_rng(0)                    # posteriors away from N(0, I)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


def row_alone(batch: dict, row: int) -> dict:
    """Row `row` of a batch alone, cut after its last observed step."""
    length = int(np.nonzero(batch["mask"][row].sum(-1) > 0)[0].max()) + 1
    return {k: v[row:row + 1, :length] for k, v in batch.items()}


def test_padding_changes_nothing_for_interpolate() -> None:
    model = tiny_model()
    batch = model.random_examples(5, seed=1, free_length=6)
    assert (batch["mask"][:, -1].sum(-1) == 0).any()          # some rows are padded already
    expected = model.interpolate(batch).numpy()
    for length, fill in ((7, 0.0), (12, np.nan)):
        padded = model.interpolate(pad(batch, length, fill)).numpy()
        np.testing.assert_allclose(padded[:, :6], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(padded[:, 6:], np.repeat(padded[:, 5:6], length - 6, 1))
    for row in range(5):                           # alone, cut to its own steps: the same
        alone = row_alone(batch, row)
        steps = alone["times"].shape[1]
        np.testing.assert_allclose(model.interpolate(alone).numpy(), expected[row:row + 1, :steps],
                                   rtol=1e-5, atol=1e-5)
    graph = tf.function(model.interpolate)
    np.testing.assert_allclose(graph(pad(batch, 12)).numpy()[:, :6], expected, rtol=1e-5,
                               atol=1e-5)


def test_predictions_and_posterior_depend_only_on_observed_values() -> None:
    model = tiny_model()
    batch = model.random_examples(4, seed=2, free_length=6)
    hidden = batch["mask"] == 0
    changed = {**batch, "values": np.where(hidden, np.float32(np.nan), batch["values"])}
    again = {**batch, "values": np.where(hidden, np.float32(1e4), batch["values"])}
    expected, z0 = model.interpolate(batch).numpy(), model.posterior(model.series(batch)).z0
    for other in (changed, again):
        np.testing.assert_array_equal(model.interpolate(other).numpy(), expected)
        other_z0 = model.posterior(model.series(other)).z0
        np.testing.assert_array_equal(other_z0.loc.numpy(), z0.loc.numpy())
        np.testing.assert_array_equal(other_z0.scale.numpy(), z0.scale.numpy())
    seen = {**batch, "values": np.where(hidden, batch["values"], batch["values"] + 0.5)}
    assert not np.allclose(model.interpolate(seen).numpy(), expected)


def test_the_encoder_reads_each_row_backwards_from_its_last_observation() -> None:
    """The posterior of a padded batch is, row by row, the ODE-RNN run on the row's
    own steps reversed in order, on negated times."""
    model = tiny_model()
    batch = pad(model.random_examples(4, seed=3, free_length=6), 9)
    z0 = model.posterior(model.series(batch)).z0.loc.numpy()
    for row in range(4):
        times, features, observed = model.encoder_inputs(model.series(row_alone(batch, row)))
        h = model.encoder(-times[:, ::-1], features[:, ::-1], observed[:, ::-1])
        mean, _ = np.split(model.posterior_layer(h).numpy(), 2, axis=-1)
        np.testing.assert_allclose(z0[row:row + 1], mean, rtol=1e-5, atol=1e-6)
    forwards = model.encoder(*model.encoder_inputs(model.series(batch)))
    mean, _ = np.split(model.posterior_layer(forwards).numpy(), 2, axis=-1)
    assert not np.allclose(mean, z0, atol=1e-3)


def test_kl_matches_the_closed_form() -> None:
    model = tiny_model()
    batch = model.random_examples(5, seed=4)
    q = model.posterior(model.series(batch)).z0
    mu, sigma = q.loc.numpy().astype(np.float64), q.scale.numpy().astype(np.float64)
    assert np.abs(np.log(sigma)).max() > 0.05                     # not the prior's scale
    closed = np.mean(0.5 * (mu ** 2 + sigma ** 2 - 1.0) - np.log(sigma), axis=-1)
    np.testing.assert_allclose(model.kl(q).numpy(), closed, rtol=1e-5, atol=1e-6)
    terms = model.loss_terms(batch, None)
    np.testing.assert_allclose(float(terms["kl"]), closed.mean(), rtol=1e-5)


def numpy_log_likelihood(scaled: np.ndarray, mask: np.ndarray, predicted: np.ndarray,
                         std: float) -> np.ndarray:
    """Per row: each variable's mean log N over its observed values (0 if none), then
    the mean over variables."""
    n, _, d = scaled.shape
    result = np.zeros(n)
    for i in range(n):
        for j in range(d):
            seen = mask[i, :, j] > 0
            if seen.any():
                x, m = scaled[i, seen, j], predicted[i, seen, j]
                log_p = -0.5 * ((x - m) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
                result[i] += log_p.mean() / d
    return result


def test_the_loss_is_the_negative_elbo_of_the_observed_values() -> None:
    model = tiny_model(observation_std=0.1)
    batch = model.random_examples(5, seed=5)
    post = model.posterior(model.series(batch))
    z0 = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    predicted = model.decode(z0, post.times)
    scaled, mask = post.scaled.numpy().astype(np.float64), post.mask.numpy()
    expected = numpy_log_likelihood(scaled, mask, predicted.numpy().astype(np.float64), 0.1)
    np.testing.assert_allclose(model.log_likelihood(post.scaled, post.mask, predicted).numpy(),
                               expected, rtol=1e-5)
    seed = tf.constant([7, 3], tf.int64)                  # one reparameterized draw
    drawn = post.z0.loc + post.z0.scale * tf.random.stateless_normal([5, 3], seed)
    predicted = model.decode(drawn, post.times).numpy().astype(np.float64)
    loss = np.mean(model.kl(post.z0).numpy() - numpy_log_likelihood(scaled, mask, predicted, 0.1))
    terms = model.loss_terms(batch, seed)
    np.testing.assert_allclose(float(terms["loss"]), loss, rtol=1e-5)
    error = ((predicted - scaled) ** 2 * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(terms["mse"]), error, rtol=1e-4)


def test_the_trajectory_starts_at_z0_and_holds_over_padding() -> None:
    layer = ODETrajectory(field_units=(), solver=RK4_1)
    layer.build((None, 2), (None, None))
    layer.field.dense_layers[0].kernel.assign([[-1.0, 0.0], [0.0, -1.0]])   # dz/dt = -z
    layer.field.dense_layers[0].bias.assign([0.0, 0.0])
    times = tf.constant([[0.0, 0.5, 1.0, 1.0], [0.0, 0.2, 0.2, 0.2]])
    path = layer(tf.ones((2, 2)), times).numpy()
    np.testing.assert_allclose(path[..., 0], np.exp(-times.numpy()), rtol=1e-3)
    np.testing.assert_array_equal(path[1, 2:], path[1, 1:2].repeat(2, 0))


def sine_waves(n: int, seed: int, steps: int = 10) -> dict:
    """Series of a·sin(t + φ) (a ∈ [0.5, 1], φ uniform) at `steps` sorted uniform times
    on [0, 5], and a mask observing about half of them (always the first)."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, 5.0, (n, steps)), axis=1)
    times[:, 0] = 0.0
    amplitude, phase = rng.uniform(0.5, 1.0, (n, 1)), rng.uniform(0.0, 2 * np.pi, (n, 1))
    values = (amplitude * np.sin(times + phase))[..., None]
    mask = rng.random((n, steps, 1)) < 0.5
    mask[:, 0] = True
    return {"times": times.astype(np.float32), "values": values.astype(np.float32),
            "mask": mask.astype(np.float32)}


def test_a_tiny_latent_ode_interpolates_irregular_sine_waves() -> None:
    """The paper's toy: trained on the observed half of each series, it predicts the
    held-out half better than each series' mean of its observed values."""
    keras.utils.set_random_seed(0)
    model = LatentODE([-1.0], [1.0], time_unit=5.0, units=16, latent_dim=4,
                      encoder_field_units=(16,), decoder_field_units=(16,),
                      observation_std=0.1, solver=RK4_1)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    model.fit(sine_waves(320, seed=0), batch_size=32, epochs=40, verbose=0)
    test = sine_waves(100, seed=1)
    held_out, mask, values = 1.0 - test["mask"], test["mask"], test["values"]
    predicted = model.interpolate(test).numpy()
    imputed = (values * mask).sum(1, keepdims=True) / mask.sum(1, keepdims=True)
    model_mse = ((predicted - values) ** 2 * held_out).sum() / held_out.sum()
    mean_mse = ((imputed - values) ** 2 * held_out).sum() / held_out.sum()
    assert model_mse < 0.6 * mean_mse, (model_mse, mean_mse)
    logs = model.evaluate(test, batch_size=100, verbose=0, return_dict=True)
    assert sorted(logs) == ["kl", "loss", "mse"]


def test_the_recipe_reuses_the_odernn_ranges() -> None:
    config, odernn = load_config("latent_ode_physionet"), load_config("odernn_physionet")
    for key in ("value_minimum", "value_maximum", "time_unit"):
        assert config["model"]["config"][key] == odernn["model"]["config"][key]
    assert config["dataset"] == odernn["dataset"]
    model = build_model(config)
    assert (model.latent_dim, model.num_variables, model.observation_std) == (20, 41, 0.01)
    assert sorted(model.serving_endpoints()) == ["interpolate", "serving_default"]
