"""Bad input and unreachable solves end with errors that name the cause and the
knob to turn — never a hang or a silent NaN."""
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo import (MaxStepsExceededError, NonFiniteStateError, ODESolverError,
                     StepSizeTooSmallError, odeint, solver_errors)
from ode_zoo.solvers import Status


def decay(t, y):
    return -y


def blow_up(t, y):          # y' = y², y(0) = 1 explodes at t = 1
    return y * y


def nan_after_half(t, y):
    return tf.where(t > 0.5, y * np.nan, -y)


T = tf.constant([0.0, 2.0])
Y = tf.constant([1.0])


@pytest.mark.parametrize("func,kwargs,error,knob", [
    (decay, dict(max_num_steps=3), MaxStepsExceededError, "max_num_steps=3"),
    (decay, dict(method="rk4", num_steps=50, max_num_steps=10), MaxStepsExceededError,
     "max_num_steps=10"),
    (blow_up, dict(), StepSizeTooSmallError, "min_step_size"),
    (decay, dict(min_step_size=0.5, rtol=1e-9, atol=1e-9), StepSizeTooSmallError,
     "min_step_size=0.5"),
    (nan_after_half, dict(), NonFiniteStateError, "NaN"),
    (nan_after_half, dict(method="euler", step_size=0.1), NonFiniteStateError, "NaN"),
])
def test_failed_solves_raise_named_errors(func, kwargs, error, knob):
    with pytest.raises(error, match=knob):
        odeint(func, Y, T, **kwargs)


def test_failed_solve_raises_inside_tf_function():
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_num_steps=3"):
        tf.function(lambda: odeint(decay, Y, T, max_num_steps=3))()


# Failing solves inside a tf.function (graph or XLA): func, odeint settings, error, knob.
FAILING_IN_FUNCTIONS = [
    (decay, dict(max_num_steps=3), MaxStepsExceededError, "max_num_steps=3"),
    (blow_up, dict(), StepSizeTooSmallError, "min_step_size"),
    (nan_after_half, dict(method="euler", step_size=0.1), NonFiniteStateError, "NaN"),
    (decay, dict(max_num_steps=3, adjoint=True, rtol=1e-3, atol=1e-3), MaxStepsExceededError,
     "max_num_steps=3"),
]


@pytest.mark.parametrize("func,kwargs,error,knob", FAILING_IN_FUNCTIONS)
def test_failed_solve_inside_tf_function_raises_its_class_in_solver_errors(func, kwargs, error,
                                                                           knob):
    solve = tf.function(lambda: odeint(func, Y, T, **kwargs))
    with pytest.raises(error, match=knob) as caught, solver_errors():
        solve()
    assert isinstance(caught.value.__cause__, tf.errors.InvalidArgumentError)
    assert "assertion failed" not in str(caught.value)


def test_solver_errors_lets_other_errors_through():
    solve = tf.function(lambda y0: odeint(decay, y0, T))
    with pytest.raises(tf.errors.InvalidArgumentError, match="y0 contains NaN") as caught, \
            solver_errors():
        solve(tf.constant([np.nan]))
    assert not isinstance(caught.value, ODESolverError)


def test_failed_solve_under_xla_returns_nan_and_status():
    ys, stats = tf.function(lambda: odeint(blow_up, Y, T, return_stats=True),
                            jit_compile=True)()
    assert int(stats.status) == Status.STEP_TOO_SMALL
    assert np.isnan(ys.numpy()[-1]).all()


@pytest.mark.parametrize("y0,t,kwargs,error,match", [
    (Y, T, dict(method="rk45"), ValueError, "available methods"),
    (Y, T, dict(method="rk4"), ValueError, "step_size or num_steps"),
    (Y, T, dict(step_size=0.1, num_steps=3), ValueError, "not both"),
    (Y, T, dict(step_size=-0.1), ValueError, "positive"),
    (Y, T, dict(rtol=0.0, atol=0.0), ValueError, "not both 0"),
    (Y, T, dict(adjoint="yes"), ValueError, "adjoint must be"),
    (Y, tf.constant([[0.0, 1.0]]), dict(), ValueError, "1-D"),
    (Y, tf.constant([0.0, 1.0, 0.5]), dict(), ValueError, "strictly increasing"),
    (Y, tf.constant([0.0, np.nan]), dict(), ValueError, "NaN"),
    (tf.constant([np.nan]), T, dict(), ValueError, "y0 contains NaN"),
    (tf.constant([1]), T, dict(), TypeError, "floating-point"),
    ((tf.constant([1.0]), tf.constant([1.0], tf.float64)), T, dict(), TypeError, "one dtype"),
])
def test_bad_input_is_rejected_clearly(y0, t, kwargs, error, match):
    with pytest.raises(error, match=match):
        odeint(lambda t, y: y, y0, t, **kwargs)


def test_derivative_with_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="returned shape"):
        odeint(lambda t, y: tf.concat([y, y], 0), tf.ones([2]), T)


def test_derivative_with_wrong_structure_is_rejected():
    with pytest.raises(ValueError, match="same structure"):
        odeint(lambda t, y: y[0], (tf.ones([2]), tf.ones([2])), T)


def test_unbuilt_keras_layer_is_rejected():
    import keras
    with pytest.raises(ValueError, match="must be built"):
        odeint(keras.layers.Dense(1), Y, T)


@pytest.mark.parametrize("func,kwargs,error,knob", FAILING_IN_FUNCTIONS)
def test_failed_solve_under_xla_raises_its_class_in_solver_errors(func, kwargs, error, knob):
    solve = tf.function(lambda: odeint(func, Y, T, **kwargs), jit_compile=True)
    with pytest.raises(error, match=knob), solver_errors():
        assert np.isnan(solve().numpy()).any()          # XLA returns; the context raises


def test_solver_errors_raises_a_failure_under_xla_once():
    fail = tf.function(lambda: odeint(decay, Y, T, max_num_steps=3), jit_compile=True)
    solve = tf.function(lambda: odeint(decay, Y, T), jit_compile=True)
    with pytest.raises(MaxStepsExceededError), solver_errors():
        fail()
    with solver_errors():                                 # the raised failure is forgotten
        ys = solve()
    np.testing.assert_allclose(ys.numpy()[-1], np.exp(-2.0), rtol=1e-3)
