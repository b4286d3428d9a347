"""ODEBlock: the solve against the matrix exponential, augmentation, saving, training under
`model.fit` (also XLA), adjoint gradients, the NFE metric, failed solves in every execution
mode and argument checks."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from ode_zoo import MaxStepsExceededError, solver_errors
from ode_zoo.layers import DenseVectorField, ODEBlock
from ode_zoo.models.base import ZooModel
from ode_zoo.solvers import Status


class LinearField(keras.layers.Layer):
    """dy/dt = y @ matrix for row vectors y, so y(t1) = y(t0) @ expm((t1 - t0) matrix)."""

    def __init__(self, matrix, **kwargs):
        super().__init__(**kwargs)
        self.matrix = np.asarray(matrix)

    def build(self, t_shape, y_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=self.matrix.shape,
            initializer=keras.initializers.Constant(self.matrix))

    def call(self, t, y):
        return ops.matmul(y, self.kernel)


def expm(a: np.ndarray) -> np.ndarray:
    """exp(a) by its Taylor series (exact to rounding for the small matrices used here)."""
    result, term = np.eye(len(a)), np.eye(len(a))
    for k in range(1, 40):
        term = term @ a / k
        result = result + term
    return result


MATRIX = np.array([[-0.1, 2.0, 0.3], [-2.0, -0.1, 0.0], [0.5, -0.4, -0.2]])


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-9)])
@pytest.mark.parametrize(
    "options",
    [
        {"method": "dopri5"},
        {"method": "tsit5", "t0": 1.0, "t1": -0.5},
        {"method": "rk4", "num_steps": 200},
        {"method": "bosh3", "adjoint": "seminorm"},
    ],
    ids=lambda o: "-".join(str(v) for v in o.values()),
)
def test_linear_field_matches_matrix_exponential(dtype, tol, options):
    options = {"t0": 0.0, "t1": 1.0, **options}
    block = ODEBlock(LinearField(MATRIX, dtype=dtype), rtol=tol, atol=tol, dtype=dtype,
                     **options)
    y0 = np.random.default_rng(0).standard_normal((4, 3))
    out = block(tf.constant(y0, dtype))
    expected = y0 @ expm((options["t1"] - options["t0"]) * MATRIX)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=100 * tol)


def test_augment_dim_appends_zero_channels_before_the_solve():
    block = ODEBlock(LinearField(MATRIX), augment_dim=1, rtol=1e-6, atol=1e-6)
    y0 = np.random.default_rng(1).standard_normal((5, 2))
    out = block(tf.constant(y0, tf.float32))
    assert out.shape == (5, 3)
    assert block.compute_output_shape((None, 2)) == (None, 3)
    padded = np.concatenate([y0, np.zeros((5, 1))], axis=1)
    np.testing.assert_allclose(out.numpy(), padded @ expm(MATRIX), atol=1e-4)


def test_augmented_vector_field_is_built_on_the_augmented_shape():
    field = DenseVectorField(hidden_units=(8,))
    block = ODEBlock(field, augment_dim=3)
    block.build((None, 2))
    assert field.built
    assert field.squash_layers[0].kernel.shape == (5, 8)
    assert field.squash_layers[-1].units == 5


def test_vector_field_with_wrong_output_shape_is_rejected_at_build():
    block = ODEBlock(DenseVectorField(hidden_units=(4,), output_dim=2))
    with pytest.raises(ValueError, match="must return dy/dt with the state's shape"):
        block.build((None, 3))


def _as_json(config: dict) -> dict:
    """The config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((3,)),
        ODEBlock(DenseVectorField(hidden_units=(8,)), t1=0.5, method="tsit5",
                 adjoint="seminorm", augment_dim=1, name="ode"),
        keras.layers.Dense(2),
    ])
    x = np.random.default_rng(2).standard_normal((4, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _as_json(loaded.get_layer("ode").get_config()) == _as_json(
        model.get_layer("ode").get_config())
    assert isinstance(loaded.get_layer("ode").vector_field, DenseVectorField)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _regression_model(**block_kwargs) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((2,)),
        ODEBlock(DenseVectorField(hidden_units=(8,)), name="ode", **block_kwargs),
        keras.layers.Dense(1),
    ])


def _regression_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(3).standard_normal((32, 2)).astype("float32")
    return x, np.sin(x[:, :1]) + x[:, 1:] ** 2


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_decreases_loss_and_logs_nfe(jit_compile):
    model = _regression_model()  # dopri5 with adjoint gradients, the defaults
    model.compile(keras.optimizers.Adam(0.05), "mse", jit_compile=jit_compile)
    history = model.fit(*_regression_data(), epochs=4, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert all(nfe >= 6 for nfe in history.history["ode_nfe"])  # at least one dopri5 step


def test_nfe_metric_is_the_mean_forward_evaluation_count():
    model = _regression_model(method="rk4", num_steps=3)
    model.compile("sgd", "mse")
    history = model.fit(*_regression_data(), epochs=2, batch_size=16, verbose=0)
    assert history.history["ode_nfe"] == [12.0, 12.0]  # 3 steps of 4 stages
    assert model.evaluate(*_regression_data(), verbose=0, return_dict=True)["ode_nfe"] == 12.0


@pytest.mark.parametrize("adjoint,backward", [(True, [12.0]), (False, None)])
def test_backward_nfe_metric_counts_the_adjoint_solve(adjoint, backward):
    model = _regression_model(method="rk4", num_steps=3, adjoint=adjoint)
    model.compile("sgd", "mse")
    history = model.fit(*_regression_data(), epochs=1, batch_size=16, verbose=0)
    assert history.history.get("ode_backward_nfe") == backward   # 3 rk4 steps backwards


def test_adjoint_gradients_match_backpropagation_through_the_solver():
    keras.utils.set_random_seed(1)
    field = DenseVectorField(hidden_units=(8,), dtype="float64")
    blocks = [ODEBlock(field, adjoint=mode, rtol=1e-9, atol=1e-9, dtype="float64")
              for mode in (False, True, "seminorm")]
    x = tf.constant(np.random.default_rng(4).standard_normal((3, 2)))
    gradients = []
    for block in blocks:
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(block(x)))
        gradients.append(tape.gradient(loss, [x] + field.trainable_variables))
    assert all(g is not None for g in gradients[0])
    for other in gradients[1:]:
        for expected, got in zip(gradients[0], other):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "rk45"}, "Unknown method 'rk45'; available methods are"),
        ({"t0": 1.0, "t1": 1.0}, "t1 must differ from t0"),
        ({"augment_dim": -1}, "augment_dim must be a non-negative integer"),
        ({"augment_dim": 1.5}, "augment_dim must be a non-negative integer"),
        ({"augment_dim": None}, "augment_dim must be a non-negative integer"),
        ({"method": "rk4"}, "'rk4' has no error estimate: pass step_size or num_steps"),
        ({"method": "euler", "step_size": 0.1, "num_steps": 4}, "not both"),
        ({"adjoint": "yes"}, "adjoint must be one of"),
        ({"adjoint": 1}, "adjoint must be one of"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ODEBlock(DenseVectorField(), **kwargs)


def test_vector_field_must_be_a_layer():
    with pytest.raises(TypeError, match="keras.layers.Layer"):
        ODEBlock(lambda t, y: -y)


def test_fixed_step_with_step_size_is_accepted():
    block = ODEBlock(LinearField(np.zeros((2, 2))), method="euler", step_size=0.25)
    y0 = tf.constant([[1.0, -2.0]])
    np.testing.assert_allclose(block(y0).numpy(), y0.numpy())
    assert math.isclose(float(block.nfe_metric.result()), 4.0)


class StiffField(keras.layers.Layer):
    """dy/dt = -1000 y: dopri5 needs hundreds of steps over [0, 1]."""

    def call(self, t, y):
        return -1000.0 * y


def _stiff_block() -> ODEBlock:
    return ODEBlock(StiffField(), max_num_steps=3, adjoint=False, name="stiff")


class StiffZooModel(ZooModel, keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.block = _stiff_block()

    def call(self, x):
        return self.block(x)


STIFF_X = np.ones((2, 2), "float32")


def test_failed_solve_in_an_eager_call_raises_the_solver_error():
    with pytest.raises(MaxStepsExceededError, match="raise max_num_steps"):
        _stiff_block()(STIFF_X)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("entry", ["predict", "fit", "evaluate"])
def test_zoo_model_entry_points_raise_the_solver_error(entry, jit_compile):
    model = StiffZooModel()
    model.compile("sgd", "mse", jit_compile=jit_compile)
    data = (STIFF_X,) if entry == "predict" else (STIFF_X, STIFF_X)
    with pytest.raises(MaxStepsExceededError, match="max_num_steps=3"):
        getattr(model, entry)(*data, verbose=0)


def test_keras_model_predict_raises_the_solver_error_in_solver_errors():
    model = keras.Sequential([keras.Input((2,)), _stiff_block()])
    with pytest.raises(MaxStepsExceededError, match="max_num_steps=3"), solver_errors():
        model.predict(STIFF_X, verbose=0)


def test_failed_solve_under_xla_is_flagged_by_the_status_metric():
    block = _stiff_block()
    model = keras.Sequential([keras.Input((2,)), block])
    model.compile("sgd", "mse", jit_compile=True)
    history = model.fit(STIFF_X, STIFF_X, verbose=0)
    assert np.isnan(history.history["loss"]).all()
    assert history.history["stiff_solve_status"] == [Status.MAX_STEPS]
    block.status_metric.reset_state()
    assert np.isnan(model.predict(STIFF_X, verbose=0)).all()
    with pytest.raises(MaxStepsExceededError, match="stiff \\(under XLA\\).*max_num_steps=3"):
        block.raise_for_status()
