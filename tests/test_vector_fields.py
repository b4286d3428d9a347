"""Time-conditioned vector fields: shapes, the ConcatSquash formula, the time channel,
float64, and serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.layers import ConcatConv2D, ConcatSquashDense, DenseVectorField
from ode_zoo.solvers import odeint


def _randomize(layer: keras.layers.Layer, seed: int = 0) -> None:
    """Overwrite every weight (also the zero-initialized biases) with N(0, 0.5²) values."""
    rng = np.random.default_rng(seed)
    layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.get_weights()])


def _concat_squash_numpy(layer: ConcatSquashDense, t: float, y: np.ndarray) -> np.ndarray:
    """(y W + b) * sigmoid(t w_gate + b_gate) + t w_hyper, from the layer's own weights."""
    kernel, bias, gate_kernel, gate_bias, hyper_kernel = (
        np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    gate = 1.0 / (1.0 + np.exp(-(t * gate_kernel + gate_bias)))
    return (y @ kernel + bias) * gate + t * hyper_kernel


@pytest.mark.parametrize("y_shape", [(4, 3), (2, 5, 3)])
def test_concat_squash_maps_last_axis_to_units(y_shape):
    layer = ConcatSquashDense(7)
    out = layer(tf.constant(0.3), tf.ones(y_shape))
    assert out.shape == y_shape[:-1] + (7,)
    assert layer.compute_output_shape((), y_shape) == y_shape[:-1] + (7,)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_concat_squash_matches_numpy_formula(dtype, tol, activation):
    layer = ConcatSquashDense(4, activation=activation, dtype=dtype)
    y = np.random.default_rng(1).standard_normal((5, 3))
    t = 0.7
    layer(tf.constant(t, dtype), tf.constant(y, dtype))
    _randomize(layer)
    out = layer(tf.constant(t, dtype), tf.constant(y, dtype))
    expected = _concat_squash_numpy(layer, t, y)
    if activation == "tanh":
        expected = np.tanh(expected)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol)


def test_concat_squash_depends_on_time_through_gate_and_hyper_bias():
    layer = ConcatSquashDense(3)
    y = tf.random.stateless_normal((2, 3), seed=(0, 1))
    layer(tf.constant(0.0), y)
    _randomize(layer)
    assert not np.allclose(layer(tf.constant(0.0), y), layer(tf.constant(1.0), y))


def test_concat_squash_rejects_bad_units():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        ConcatSquashDense(0)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, (2, 6, 6, 4)),
        ({"strides": 2}, (2, 3, 3, 4)),
        ({"padding": "valid"}, (2, 4, 4, 4)),
        ({"strides": 2, "transpose": True}, (2, 12, 12, 4)),
    ],
)
def test_concat_conv2d_output_shapes(kwargs, expected):
    layer = ConcatConv2D(4, **kwargs)
    out = layer(tf.constant(0.5), tf.ones((2, 6, 6, 3)))
    assert out.shape == expected
    assert layer.compute_output_shape((), (2, 6, 6, 3)) == expected


@pytest.mark.parametrize("transpose", [False, True])
def test_concat_conv2d_output_is_affine_in_time(transpose):
    """t enters as a constant input channel, so out(t) = out(0) + t (out(1) - out(0)) ≠ out(0)."""
    layer = ConcatConv2D(2, transpose=transpose)
    y = tf.random.stateless_normal((1, 5, 5, 3), seed=(2, 3))
    out0, out1, out_t = (layer(tf.constant(s), y).numpy() for s in (0.0, 1.0, 2.5))
    assert np.abs(out1 - out0).max() > 1e-3
    np.testing.assert_allclose(out_t, out0 + 2.5 * (out1 - out0), rtol=1e-5, atol=1e-5)


def test_concat_conv2d_requires_nhwc():
    with pytest.raises(ValueError, match=r"\(batch, H, W, C\)"):
        ConcatConv2D(2)(tf.constant(0.0), tf.ones((2, 3)))


def test_dense_vector_field_is_squash_layers_with_activation_between():
    field = DenseVectorField(hidden_units=(6, 5), activation="tanh")
    y = np.random.default_rng(3).standard_normal((4, 2))
    t = -0.4
    field(tf.constant(t), tf.constant(y, tf.float32))
    _randomize(field)
    h = y
    for i, layer in enumerate(field.squash_layers):
        h = _concat_squash_numpy(layer, t, h)
        if i < len(field.squash_layers) - 1:
            h = np.tanh(h)
    out = field(tf.constant(t), tf.constant(y, tf.float32))
    assert [layer.units for layer in field.squash_layers] == [6, 5, 2]
    np.testing.assert_allclose(out.numpy(), h, rtol=1e-5, atol=1e-5)


def test_dense_vector_field_output_dim():
    field = DenseVectorField(hidden_units=(8,), output_dim=3)
    assert field(tf.constant(0.0), tf.ones((2, 5))).shape == (2, 3)
    assert field.compute_output_shape((), (None, 5)) == (None, 3)


def test_float64_field_solves_in_float64():
    field = DenseVectorField(hidden_units=(8,), dtype="float64")
    y0 = tf.ones((3, 2), tf.float64)
    field(tf.constant(0.0, tf.float64), y0)
    assert all(w.dtype == "float64" for w in field.weights)
    ys = odeint(field, y0, tf.constant([0.0, 0.5], tf.float64), rtol=1e-10, atol=1e-10)
    assert ys.dtype == tf.float64
    assert ys.shape == (2, 3, 2)


def test_float32_field_returns_the_solver_state_dtype():
    """Evaluated through stateless_call (as odeint does) a float32 field still returns
    dy/dt in the float64 state's dtype."""
    field = DenseVectorField(hidden_units=(4,))
    y = tf.ones((2, 3), tf.float64)
    field(tf.constant(0.0), tf.ones((2, 3)))
    params = [v.value for v in field.trainable_variables]
    out, _ = field.stateless_call(params, [], tf.constant(0.0, tf.float64), y)
    assert out.dtype == tf.float64
    np.testing.assert_allclose(out.numpy(), field(tf.constant(0.0), tf.ones((2, 3))).numpy())


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConcatSquashDense(3, activation="softplus", name="squash"),
        lambda: ConcatConv2D(2, kernel_size=(3, 1), strides=2, transpose=True, name="conv"),
        lambda: DenseVectorField(hidden_units=(4, 4), output_dim=None, activation="relu"),
    ],
)
def test_config_round_trip_rebuilds_the_same_function(make):
    layer = make()
    y_shape = (2, 4, 4, 3) if isinstance(layer, ConcatConv2D) else (2, 3)
    t, y = tf.constant(0.2), tf.random.stateless_normal(y_shape, seed=(4, 5))
    expected = layer(t, y)
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"ode_zoo>{type(layer).__name__}"
    clone = keras.saving.deserialize_keras_object(serialized)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    clone(t, y)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(t, y).numpy(), expected.numpy())
