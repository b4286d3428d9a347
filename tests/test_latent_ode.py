"""The Latent ODE (`LatentODE`, `ODETrajectory`): padding and unobserved values change
nothing, the backward encoder, the KL and the likelihood against numpy, the
interpolation errors (element and paper normalization, exact over a split) and the
held-out interpolation against mean imputation checked against numpy, the path at
other times and `ode-zoo predict` drawing it, the paper's toy of irregularly sampled
sine waves interpolated after seconds of training, and the latent_ode_physionet recipe.
The zoo harness row is in test_model_families.py."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.cli import main
from ode_zoo.layers import ODETrajectory
from ode_zoo.models import LatentODE
from ode_zoo.models.held_out import (held_out_metrics, held_out_statistics, hide_half,
                                     imputation_squared_error)
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


def scaled_truth(model: LatentODE, batch: dict) -> np.ndarray:
    low, high = np.asarray(model.value_minimum), np.asarray(model.value_maximum)
    return (batch["values"] - low) / (high - low) * batch["mask"]


def numpy_errors(truth: np.ndarray, predicted: np.ndarray, mask: np.ndarray) -> tuple:
    """(mean over all masked values, the paper's: per series and variable over its
    masked values or 0, then the mean over variables, then over series), by loops."""
    n, _, d = truth.shape
    squared, per_series = [], []
    for i in range(n):
        per_variable = []
        for j in range(d):
            seen = mask[i, :, j] > 0
            errors = (predicted[i, seen, j] - truth[i, seen, j]) ** 2
            squared.extend(errors)
            per_variable.append(errors.mean() if seen.any() else 0.0)
        per_series.append(np.mean(per_variable))
    return np.mean(squared), np.mean(per_series)


def test_mse_and_paper_mse_are_exact_over_a_split_in_uneven_batches() -> None:
    model = tiny_model()
    model.compile(optimizer="adam")
    batch = model.random_examples(7, seed=8, free_length=6)
    truth = scaled_truth(model, batch)
    low, high = np.asarray(model.value_minimum), np.asarray(model.value_maximum)
    predicted = (model.interpolate(batch).numpy() - low) / (high - low)
    element, paper = numpy_errors(truth, predicted, batch["mask"])
    assert abs(element - paper) > 0.05 * element               # the two differ here
    logs = model.evaluate(batch, batch_size=3, verbose=0, return_dict=True)   # 3 + 3 + 1
    np.testing.assert_allclose(logs["mse"], element, rtol=1e-4)
    np.testing.assert_allclose(logs["paper_mse"], paper, rtol=1e-4)
    terms = model.loss_terms(batch, None)
    np.testing.assert_allclose(logs["loss"], float(terms["loss"]), rtol=1e-4)


def test_hide_half_hides_half_of_each_row_whatever_the_batching_and_padding() -> None:
    mask = LatentODE([0.0] * 4, [1.0] * 4, units=2, latent_dim=2).random_examples(
        9, seed=9, free_length=7)["mask"]
    hidden = hide_half(mask, np.random.default_rng(3))
    assert np.all(hidden <= mask)
    np.testing.assert_array_equal(hidden.sum((1, 2)), mask.sum((1, 2)) // 2)
    rng = np.random.default_rng(3)
    padded = np.concatenate([mask[4:], np.zeros((5, 4, 4), np.float32)], axis=1)
    in_two = np.concatenate([hide_half(mask[:4], rng), hide_half(padded, rng)[:, :7]])
    np.testing.assert_array_equal(in_two, hidden)
    assert not np.array_equal(hide_half(mask, np.random.default_rng(4)), hidden)


def test_held_out_predictions_never_read_the_hidden_values() -> None:
    model = tiny_model()
    batch = model.random_examples(5, seed=10, free_length=6)
    hidden = hide_half(batch["mask"], np.random.default_rng(0))
    assert hidden.sum() > 3
    expected = model.predict_hidden(batch, hidden)
    for fill in (np.nan, 1e4):
        changed = {**batch, "values": np.where(hidden > 0, np.float32(fill), batch["values"])}
        np.testing.assert_array_equal(model.predict_hidden(changed, hidden), expected)
    shown = (batch["mask"] - hidden) > 0
    moved = {**batch, "values": np.where(shown, batch["values"] + 0.5, batch["values"])}
    assert not np.allclose(model.predict_hidden(moved, hidden), expected)


def test_mean_imputation_and_held_out_errors_match_numpy() -> None:
    rng = np.random.default_rng(11)
    n, t, d = 6, 8, 3
    truth, predicted = rng.random((n, t, d)), rng.random((n, t, d))
    mask = (rng.random((n, t, d)) < 0.6).astype(np.float32)
    mask[0, :, 2] = 0.0
    mask[0, 3:5, 2] = 1.0
    hidden = hide_half(mask, rng)
    hidden[0, :, 2] = mask[0, :, 2]         # series 0 shows none of variable 2's values
    visible = mask - hidden
    assert np.any((hidden.sum(1) > 0) & (visible.sum(1) == 0))   # some fall back
    population = (truth * visible).sum((0, 1)) / visible.sum((0, 1))
    imputed = np.zeros((n, t, d))
    for i in range(n):
        for j in range(d):
            shown = visible[i, :, j] > 0
            imputed[i, :, j] = truth[i, shown, j].mean() if shown.any() else population[j]
    metrics = held_out_metrics(held_out_statistics(truth, visible, hidden, predicted))
    for name, guess in (("held_out", predicted), ("held_out_mean_imputation", imputed)):
        element, paper = numpy_errors(truth, guess, hidden)
        np.testing.assert_allclose(metrics[f"{name}_mse"], element, rtol=1e-10)
        np.testing.assert_allclose(metrics[f"{name}_paper_mse"], paper, rtol=1e-10)
    statistics = held_out_statistics(truth, visible, hidden, predicted)
    assert np.all(imputation_squared_error(statistics) >= 0)
    with pytest.raises(ValueError, match="overlap"):
        held_out_statistics(truth, mask, hidden, predicted)


def test_evaluation_metrics_are_the_held_out_errors_of_the_split_in_order() -> None:
    model = tiny_model()
    batch = model.random_examples(7, seed=12, free_length=6)
    data = tf.data.Dataset.from_tensor_slices(batch).batch(3)
    metrics = model.evaluation_metrics(data, "test")
    hidden = hide_half(batch["mask"], np.random.default_rng(0))    # HELD_OUT_SEED
    expected = held_out_metrics(held_out_statistics(
        scaled_truth(model, batch), batch["mask"] - hidden, hidden,
        model.predict_hidden(batch, hidden)))
    assert sorted(metrics) == sorted(f"test_{name}" for name in expected)
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[f"test_{name}"], value, rtol=1e-5)


def test_interpolate_at_follows_the_path_between_the_input_times() -> None:
    model = tiny_model()
    batch = model.random_examples(4, seed=13, free_length=5)
    at_inputs = model.interpolate(batch).numpy()
    np.testing.assert_allclose(model.interpolate_at(batch, batch["times"]).numpy(), at_inputs,
                               rtol=1e-5, atol=1e-4)
    start = batch["times"][:, :1]
    grid = start + np.linspace(0.0, 1.0, 5, dtype=np.float32)[None, :] * (48.0 - start)
    assert model.interpolate_at(batch, grid).shape == (4, 5, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="first input time"):
        model.interpolate_at(batch, grid - 1.0)


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
    assert sorted(logs) == ["kl", "loss", "mse", "paper_mse"]


def test_the_recipe_reuses_the_odernn_ranges() -> None:
    config, odernn = load_config("latent_ode_physionet"), load_config("odernn_physionet")
    for key in ("value_minimum", "value_maximum", "time_unit"):
        assert config["model"]["config"][key] == odernn["model"]["config"][key]
    assert config["dataset"] == odernn["dataset"]
    model = build_model(config)
    assert (model.latent_dim, model.num_variables, model.observation_std) == (20, 41, 0.01)
    assert sorted(model.serving_endpoints()) == ["interpolate", "serving_default"]


def test_ode_zoo_predict_draws_test_patients_paths_as_a_png(physionet_dir: Path, tmp_path: Path,
                                                           capsys) -> None:
    output = tmp_path / "patients.png"
    assert main(["predict", "latent_ode_physionet", "--output", str(output), "--num", "2",
                 "--data-dir", str(physionet_dir)]) == 0
    assert "drew 2 test patients (RecordIDs 132540, 132555)" in capsys.readouterr().out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
