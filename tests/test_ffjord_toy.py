"""FFJORDToyFlow: base density when the field is zero, a normalized density after
training, RNODE training lowers the NLL, fit and evaluate log the solver's evaluation
counts, config and .keras round trips, the plot, clear errors for points of another
shape or dtype (in Keras and through the SavedModel)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import ode_zoo
from ode_zoo.datasets.toy2d import sample_toy, toy_dataset
from ode_zoo.demos.toy_density import plot_toy_density
from ode_zoo.models.ffjord_toy import FFJORDToyFlow

FAST = dict(hidden_units=(16, 16), num_steps=4, eval_solver={"method": "rk4", "num_steps": 8})


def _zero_last_layer(model: FFJORDToyFlow) -> None:
    last = model.field.squash_layers[-1]
    for weight in (last.kernel, last.bias, last.hyper_kernel):
        weight.assign(tf.zeros_like(weight))


@pytest.fixture(scope="module")
def trained():
    """A small flow trained on 8gaussians, with its NLL before and after."""
    keras.utils.set_random_seed(0)
    model = FFJORDToyFlow(**FAST)
    data = sample_toy("8gaussians", 512, seed=0)
    before = -float(tf.reduce_mean(model.log_prob(data)))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(toy_dataset("8gaussians", 200 * 256, batch_size=256, seed=1),
                        epochs=1, verbose=0)
    after = -float(tf.reduce_mean(model.log_prob(data)))
    return model, before, after, history.history


def test_zero_field_gives_the_base_density():
    model = FFJORDToyFlow(hidden_units=(8,), eval_solver={"method": "dopri5"})
    _zero_last_layer(model)
    x = sample_toy("pinwheel", 16, seed=0)
    expected = -0.5 * (x ** 2).sum(axis=1) - np.log(2 * np.pi)
    np.testing.assert_allclose(model.log_prob(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    z = tf.random.stateless_normal((5, 2), seed=[0, 3])
    np.testing.assert_allclose(model.sample(z).numpy(), z.numpy())


def test_training_lowers_the_nll_and_reports_rnode_metrics(trained):
    _, before, after, history = trained
    assert set(history) == {"loss", "nll", "kinetic", "jacobian", "nfe", "backward_nfe"}
    assert after < before - 0.5, (before, after)
    assert history["kinetic"][0] > 0 and history["jacobian"][0] > 0


def test_fit_logs_forward_and_adjoint_evaluation_counts(trained):
    history = trained[3]
    assert history["nfe"] == [16.0]            # 4 rk4 steps of 4 stages per training solve
    assert history["backward_nfe"] == [16.0]   # the adjoint solves back on the same grid


def test_backprop_training_logs_no_backward_count():
    model = FFJORDToyFlow(**{**FAST, "num_steps": 2}, adjoint=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(sample_toy("moons", 64, seed=0), batch_size=32, epochs=1, verbose=0)
    assert history.history["nfe"] == [8.0] and "backward_nfe" not in history.history


def test_trained_density_integrates_to_one(trained):
    model = trained[0]
    axis = np.linspace(-6, 6, 61, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    mass = np.exp(model.log_prob(grid).numpy()).sum() * (axis[1] - axis[0]) ** 2
    assert abs(mass - 1.0) < 0.02, mass


def test_samples_land_where_the_log_prob_is_high(trained):
    model = trained[0]
    z = tf.random.stateless_normal((256, 2), seed=[0, 1])
    samples = model.sample(z)
    assert samples.shape == (256, 2)
    np.testing.assert_array_equal(samples.numpy(), model.sample(z).numpy())
    wide = tf.random.stateless_normal((256, 2), seed=[0, 1]) * 3.0
    assert tf.reduce_mean(model.log_prob(samples)) > tf.reduce_mean(model.log_prob(wide))


def test_evaluate_reports_the_eval_nll(trained):
    model = trained[0]
    data = sample_toy("8gaussians", 512, seed=0)
    result = model.evaluate(data, batch_size=512, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["nll"], -np.mean(model.log_prob(data)), rtol=1e-5)
    assert result["nfe"] == 32.0               # the evaluation solver: 8 rk4 steps


def test_adaptive_evaluation_counts_its_steps():
    model = FFJORDToyFlow(hidden_units=(8,))   # dopri5 at 1e-5
    model.compile()
    result = model.evaluate(sample_toy("moons", 64, seed=0), batch_size=64, verbose=0,
                            return_dict=True)
    assert result["nfe"] >= 8 and (result["nfe"] - 2) % 6 == 0, result


def test_config_round_trip():
    model = FFJORDToyFlow(hidden_units=(5, 7), kinetic_weight=0.1, jacobian_weight=0.2,
                          method="euler", num_steps=3, adjoint="seminorm",
                          eval_solver={"rtol": 1e-4})
    clone = FFJORDToyFlow.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.architecture_config()["hidden_units"] == [5, 7]
    assert clone.count_params() == model.count_params()


def test_keras_file_round_trip(trained, tmp_path):
    model = trained[0]
    path = tmp_path / "flow.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FFJORDToyFlow)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 200
    x = sample_toy("8gaussians", 8, seed=5)
    np.testing.assert_allclose(loaded.log_prob(x).numpy(), model.log_prob(x).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_plot_writes_a_png(trained, tmp_path):
    path = plot_toy_density(trained[0], sample_toy("8gaussians", 300, seed=0),
                            tmp_path / "density.png", grid_size=20, num_samples=300)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


WRONG_SHAPES = [(2,), (2, 2, 2), (2, 3), (2, 2, 1)]


@pytest.fixture(scope="module")
def tiny_flow():
    return FFJORDToyFlow(hidden_units=(4,), eval_solver={"method": "rk4", "num_steps": 1})


ENTRIES = ["log_prob", "call", "predict", "sample"]


def _entry(model: FFJORDToyFlow, name: str):
    if name == "predict":
        return lambda x: model.predict(x, verbose=0)
    return model if name == "call" else getattr(model, name)


@pytest.mark.parametrize("shape", WRONG_SHAPES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_points_of_another_shape_are_refused_naming_n_by_2(tiny_flow, entry, shape):
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        _entry(tiny_flow, entry)(np.zeros(shape, np.float32))


@pytest.mark.parametrize("entry", ENTRIES)
def test_integer_points_are_refused_with_a_type_error(tiny_flow, entry):
    with pytest.raises(TypeError, match="float32"):
        _entry(tiny_flow, entry)(np.zeros((2, 2), np.int32))


def test_saved_model_signatures_refuse_points_of_another_shape(tiny_flow, tmp_path):
    """A SavedModel signature runs on any shape it is fed: [2] gave one log-density
    and [2, 2, 2] a [2, 2, 2] "sample" before the run-time check."""
    signatures = tf.saved_model.load(str(ode_zoo.export(tiny_flow, tmp_path))).signatures
    for shape in WRONG_SHAPES:
        for name, key, what in [("log_prob", "x", "points"), ("serving_default", "x", "points"),
                                ("sample", "z", "base noise z")]:
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match=rf"expects {what} of shape \[N, 2\]|expected shape \[\?,2\]"):
                signatures[name](**{key: tf.zeros(shape)})
    good = signatures["log_prob"](x=tf.zeros((3, 2)))["log_prob"]
    np.testing.assert_allclose(good.numpy(), tiny_flow.log_prob(tf.zeros((3, 2))).numpy(),
                               rtol=1e-5, atol=1e-5)
