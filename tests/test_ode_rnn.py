"""The ODE-RNN (layer and `ODERNNClassifier`): padding and unobserved values change
nothing, the ODE part against exact solutions, input checks, a toy of irregular sine
waves learned in seconds, and the odernn_physionet recipe on the real data (when
present). The zoo harness rows are in test_model_families.py."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.datasets import variable_ranges
from ode_zoo.layers import ODERNN
from ode_zoo.models import ODERNNClassifier
from ode_zoo.models.batches import InvalidInputsError
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.publish import training_evaluation_counts
from ode_zoo.zoo.recipes import build_model, training_data

RK4_1 = {"method": "rk4", "num_steps": 1}


def tiny_model(**overrides) -> ODERNNClassifier:
    keras.utils.set_random_seed(0)
    settings = dict(units=6, field_units=(8,), head_units=(4,), time_unit=10.0, solver=RK4_1)
    return ODERNNClassifier([-1.0, 0.0, 10.0], [1.0, 5.0, 30.0], **{**settings, **overrides})


def pad(batch: dict, length: int, fill: float = 0.0) -> dict:
    """The batch padded to `length` steps: last times repeated, mask 0, values `fill`."""
    extra = length - batch["times"].shape[1]
    times = np.concatenate([batch["times"], np.repeat(batch["times"][:, -1:], extra, 1)], 1)
    n, _, d = batch["values"].shape
    values = np.concatenate([batch["values"], np.full((n, extra, d), fill, np.float32)], 1)
    mask = np.concatenate([batch["mask"], np.zeros((n, extra, d), np.float32)], 1)
    return {"times": times, "values": values, "mask": mask}


def test_padding_changes_nothing() -> None:
    model = tiny_model()
    batch = model.random_examples(5, seed=1, free_length=6)
    assert (batch["mask"][:, -1].sum(-1) == 0).any()          # some rows are padded already
    expected = model(batch).numpy()
    for length in (7, 12):
        np.testing.assert_allclose(model(pad(batch, length)).numpy(), expected,
                                   rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model(pad(batch, 9, fill=np.nan)).numpy(), expected,
                               rtol=1e-6, atol=1e-6)
    for row in range(5):                           # alone, cut to its own steps: the same
        length = int((batch["mask"][row].sum(-1) > 0).sum())
        alone = {k: v[row:row + 1, :length] for k, v in batch.items()}
        np.testing.assert_allclose(model(alone).numpy(), expected[row:row + 1], rtol=1e-5,
                                   atol=1e-6)
    graph = tf.function(model.probability)
    np.testing.assert_allclose(graph(pad(batch, 12)).numpy(), tf.sigmoid(expected).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_the_output_depends_only_on_observed_values() -> None:
    model = tiny_model()
    batch = model.random_examples(4, seed=2, free_length=5)
    expected = model(batch).numpy()
    unobserved = batch["mask"] == 0
    noisy = np.where(unobserved, np.random.default_rng(0).normal(size=unobserved.shape) * 100,
                     batch["values"]).astype(np.float32)
    np.testing.assert_array_equal(model({**batch, "values": noisy}).numpy(), expected)
    with_nan = np.where(unobserved, np.nan, batch["values"]).astype(np.float32)
    np.testing.assert_array_equal(model({**batch, "values": with_nan}).numpy(), expected)
    observed = np.argwhere(batch["mask"] == 1)[0]
    changed = batch["values"].copy()
    changed[tuple(observed)] += 0.5
    assert not np.allclose(model({**batch, "values": changed}).numpy(), expected)
    later = batch["times"].copy()
    later[:, 1:] += 3.0                            # times matter too (the ODE between steps)
    assert not np.allclose(model({**batch, "times": later}).numpy(), expected)


def linear_layer(units: int, kernel: np.ndarray, num_steps: int = 20) -> ODERNN:
    """An ODE-RNN whose field is dh/dt = h·kernel (one linear layer, no bias)."""
    layer = ODERNN(units, field_units=(), solver={"method": "rk4", "num_steps": num_steps})
    layer.build((None, None), (None, None, 2), (None, None))
    layer.field.set_weights([kernel.astype(np.float32), np.zeros(units, np.float32)])
    return layer


def test_zero_field_is_the_identity_and_a_linear_field_its_exponential() -> None:
    h = tf.constant(np.random.default_rng(0).normal(size=(4, 3)), tf.float32)
    dt = tf.constant([0.0, 0.3, 1.0, 2.5])
    zero = linear_layer(3, np.zeros((3, 3)))
    np.testing.assert_array_equal(zero.evolve(h, dt).numpy(), h.numpy())
    decay = linear_layer(3, -np.eye(3))
    np.testing.assert_allclose(decay.evolve(h, dt).numpy(),
                               h.numpy() * np.exp(-dt.numpy())[:, None], rtol=1e-5, atol=1e-6)
    rotation = np.array([[0.0, 1.0], [-1.0, 0.0]])   # h' = h·R: rotation by the elapsed time
    spin = linear_layer(2, rotation)
    start = tf.constant([[1.0, 0.0]] * 3)
    angle = np.array([0.0, 0.5, 2.0])
    np.testing.assert_allclose(spin.evolve(start, tf.constant(angle, tf.float32)).numpy(),
                               np.stack([np.cos(angle), np.sin(angle)], 1), atol=1e-5)


def test_between_observations_the_state_follows_the_field_over_each_rows_gap() -> None:
    """One observation at t0, nothing until t1: the final state is the GRU's update
    carried by exp(−(t1 − t0)); with a zero field it is that update itself."""
    decay = linear_layer(2, -np.eye(2))
    inputs = tf.constant(np.random.default_rng(1).normal(size=(3, 2, 2)), tf.float32)
    observed = tf.constant([[True, False]] * 3)
    times = tf.constant([[0.0, 0.0], [1.0, 1.5], [2.0, 4.0]])
    updated, _ = decay.cell(inputs[:, 0], [tf.zeros((3, 2))])
    gaps = (times[:, 1] - times[:, 0]).numpy()
    np.testing.assert_allclose(decay(times, inputs, observed).numpy(),
                               updated.numpy() * np.exp(-gaps)[:, None], rtol=1e-5, atol=1e-6)
    decay.field.set_weights([np.zeros((2, 2), np.float32), np.zeros(2, np.float32)])
    np.testing.assert_allclose(decay(times, inputs, observed).numpy(), updated.numpy(),
                               rtol=1e-6)


def test_every_weight_gets_a_gradient() -> None:
    model = tiny_model()
    batch = model.random_examples(4, seed=3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(batch))
    grads = tape.gradient(loss, model.trainable_variables)
    names = [v.path for v, g in zip(model.trainable_variables, grads)
             if g is None or not np.any(g.numpy())]
    assert not names


def test_input_checks_name_the_problem() -> None:
    model = tiny_model()
    batch = model.random_examples(2, seed=4)
    cases = [
        ({**batch, "values": batch["values"][..., :2]}, ValueError, r"values \[N, T, 3\]"),
        ({**batch, "times": batch["times"][:, :3]}, ValueError, "got times"),
        ({**batch, "mask": batch["mask"][0]}, ValueError, "mask"),
        ({k: batch[k] for k in ("times", "values")}, TypeError, "a dict of float32"),
        ({**batch, "times": batch["times"][:, ::-1].copy()}, InvalidInputsError, "decrease"),
        ({**batch, "mask": batch["mask"] * 2}, InvalidInputsError, "mask of 0 and 1"),
        ({**batch, "values": np.where(batch["mask"] == 1, np.nan, 0).astype(np.float32)},
         InvalidInputsError, "finite observed values"),
        ({**batch, "times": batch["times"].astype(np.int32)}, TypeError, "times is int32"),
    ]
    for bad, error, message in cases:
        with pytest.raises(error, match=message):
            model(bad)
    endpoint = model.serving_endpoints()["mortality"]
    graph = tf.function(endpoint.function, input_signature=list(endpoint.inputs.values()))
    for bad, _, message in cases[4:7]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            graph(**bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="disagree"):
        graph(batch["times"][:, :3], batch["values"], batch["mask"])
    empty = {k: v[:0] for k, v in batch.items()}
    assert model(empty).shape == (0,) and graph(**empty)["probability"].shape == (0,)
    assert model.predict(empty).shape == (0,)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="as many of each"):
        ODERNNClassifier([0.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="value_maximum >= value_minimum"):
        ODERNNClassifier([0.0], [-1.0])
    with pytest.raises(ValueError, match="time_unit"):
        ODERNNClassifier([0.0], [1.0], time_unit=0)
    with pytest.raises(ValueError, match="outcome"):
        ODERNNClassifier([0.0], [1.0], outcome="in-hospital death")


def sine_waves(n: int, seed: int) -> tuple:
    """sin(2π·f·t) of frequency f = 0.25 or 1 per hour (label 1), sampled at 4 to 12
    random times over 4 hours, padded to 12 steps: telling them apart needs the times."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    times = np.zeros((n, 12), np.float32)
    values, mask = np.zeros((n, 12, 1), np.float32), np.zeros((n, 12, 1), np.float32)
    for i in range(n):
        k = rng.integers(4, 13)
        t = np.sort(rng.uniform(0, 4, k))
        times[i, :k], times[i, k:] = t, t[-1]
        values[i, :k, 0] = np.sin(2 * np.pi * (0.25, 1.0)[labels[i]] * t)
        mask[i, :k] = 1.0
    return {"times": times, "values": values, "mask": mask}, labels


def test_a_tiny_model_tells_two_frequencies_of_irregular_sines_apart() -> None:
    keras.utils.set_random_seed(0)
    model = ODERNNClassifier([-1.0], [1.0], time_unit=1.0, units=12, field_units=(16,),
                             head_units=(8,), solver=RK4_1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), **model.compile_defaults())
    x, y = sine_waves(400, seed=0)
    model.fit(x, y, batch_size=50, epochs=16, verbose=0)        # about 4 s
    test_x, test_y = sine_waves(200, seed=1)
    metrics = model.evaluate(test_x, test_y, verbose=0, return_dict=True)
    assert metrics["accuracy"] > 0.88 and metrics["auc"] > 0.95, metrics


# --- the recipe on the real data -------------------------------------------------------

def test_recipe_ranges_are_the_data_sets(physionet_dir: Path) -> None:
    ranges = variable_ranges(data_dir=str(physionet_dir))
    config = load_config("odernn_physionet")["model"]["config"]
    np.testing.assert_array_equal(np.float32(config["value_minimum"]), ranges.minimum)
    np.testing.assert_array_equal(np.float32(config["value_maximum"]), ranges.maximum)


def test_loader_to_pipeline_to_model(physionet_dir: Path) -> None:
    config = load_config("odernn_physionet")
    train_dataset, steps, validation = training_data(config, str(physionet_dir))
    assert steps == 5629 // 50
    x, y = next(iter(train_dataset(0, 0)))
    assert sorted(x) == ["mask", "times", "values"] and y.shape == (50,)
    t = x["times"].shape[1]
    assert x["values"].shape == x["mask"].shape == (50, t, 41) and t >= 100
    assert {v.dtype for v in x.values()} == {tf.float32} and y.dtype == tf.int64
    again, _ = next(iter(train_dataset(0, 0)))                      # a seeded order
    np.testing.assert_array_equal(again["values"], x["values"])
    other, _ = next(iter(train_dataset(1, 0)))
    assert not np.array_equal(other["values"], x["values"])
    v_x, v_y = next(iter(validation))
    assert v_y.shape == (500,) and v_x["values"].shape[0] == 500
    model = build_model(config, dict(units=4, field_units=[4], head_units=[4]))
    probability = model.probability({k: v[:8] for k, v in x.items()}).numpy()
    assert probability.shape == (8,) and np.all((probability > 0) & (probability < 1))


def test_publish_measures_a_training_step_on_dict_inputs(physionet_dir: Path,
                                                        tmp_path: Path) -> None:
    config = load_config("odernn_physionet")
    tiny = dict(units=4, field_units=[4], head_units=[4])
    config["training"]["model_overrides"] = tiny
    weights = tmp_path / "tiny.weights.h5"
    build_model(config, tiny).save_weights(weights)
    # The recipe's model logs no solver counts: the step runs on a real dict batch.
    assert training_evaluation_counts(config, weights, str(physionet_dir)) == {}
