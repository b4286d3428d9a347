"""Adaptive solves meet their tolerance on problems with known solutions, in
both directions of time, on nested states, with output times between steps; an
empty state (a batch of no examples) solves to an empty solution."""
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo import odeint

ADAPTIVE = ["bosh3", "dopri5", "tsit5"]


@pytest.mark.parametrize("method", ADAPTIVE)
@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-8), (tf.float32, 1e-5)])
def test_exponential_decay_within_tolerance(method, dtype, tol):
    rates = tf.constant([0.5, 1.0, 3.0], dtype)
    times = np.linspace(0.0, 3.0, 13)
    ys = odeint(lambda t, y: -rates * y, tf.ones([3], dtype), tf.constant(times, dtype),
                method=method, rtol=tol, atol=tol)
    expected = np.exp(-np.outer(times, rates.numpy()))
    np.testing.assert_allclose(ys.numpy(), expected, rtol=0, atol=30 * tol)


@pytest.mark.parametrize("method,tol", [("bosh3", 1e-7), ("dopri5", 1e-9), ("tsit5", 1e-9)])
def test_harmonic_oscillator_within_tolerance(method, tol):
    omega = 2.0

    def field(t, state):
        x, v = state
        return v, -omega**2 * x

    times = np.linspace(0.0, 10.0, 41)
    x, v = odeint(field, (tf.constant(1.0, tf.float64), tf.constant(0.0, tf.float64)),
                  tf.constant(times, tf.float64), method=method, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.numpy(), np.cos(omega * times), atol=1000 * tol)
    np.testing.assert_allclose(v.numpy(), -omega * np.sin(omega * times), atol=2000 * tol)


def test_error_shrinks_with_the_tolerance():
    times = tf.constant(np.linspace(0, 5, 11), tf.float64)
    errors = []
    for tol in (1e-4, 1e-7, 1e-10):
        ys = odeint(lambda t, y: -y * tf.cos(t), tf.ones([1], tf.float64), times,
                    rtol=tol, atol=tol)
        errors.append(np.max(np.abs(ys.numpy()[:, 0] - np.exp(-np.sin(times.numpy())))))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-9


def test_decreasing_time_grid_runs_backwards():
    times = tf.constant([2.0, 1.5, 0.0], tf.float64)
    ys = odeint(lambda t, y: -y, tf.constant([np.exp(-2.0)], tf.float64), times,
                rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ys.numpy()[:, 0], np.exp(-times.numpy()), rtol=1e-8)


def test_time_dependent_field_backwards_matches_forward():
    def field(t, y):
        return tf.sin(t) * y

    forward = odeint(field, tf.ones([2], tf.float64), tf.constant([0.0, 2.0], tf.float64),
                     rtol=1e-10, atol=1e-10)
    back = odeint(field, forward[-1], tf.constant([2.0, 0.0], tf.float64),
                  rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(back[-1].numpy(), [1.0, 1.0], rtol=1e-8)


def test_nested_dict_state_keeps_structure_and_shapes():
    state = {"position": tf.zeros([4, 3], tf.float64), "velocity": tf.ones([4, 3], tf.float64)}

    def field(t, s):
        return {"position": s["velocity"], "velocity": tf.zeros_like(s["velocity"])}

    ys = odeint(field, state, tf.constant([0.0, 1.0, 2.5], tf.float64))
    assert set(ys) == {"position", "velocity"}
    assert ys["position"].shape == (3, 4, 3)
    np.testing.assert_allclose(ys["position"].numpy()[:, 0, 0], [0.0, 1.0, 2.5], atol=1e-10)


def test_outputs_between_steps_do_not_add_steps():
    def field(t, y):
        return -y

    _, coarse = odeint(field, tf.ones([1], tf.float64), tf.constant([0.0, 4.0], tf.float64),
                       return_stats=True)
    ys, dense = odeint(field, tf.ones([1], tf.float64),
                       tf.constant(np.linspace(0, 4, 200), tf.float64), return_stats=True)
    assert int(dense.num_accepted_steps) == int(coarse.num_accepted_steps)
    np.testing.assert_allclose(ys.numpy()[:, 0], np.exp(-np.linspace(0, 4, 200)), atol=5e-5)


def test_the_last_step_stretches_to_the_end_when_the_error_allows():
    # Harmonic oscillator over [0, 2] at 1e-3: after two steps the PI controller
    # proposes a step that stops short of t=2, which would leave a short fourth
    # step (26 evaluations). The error estimate allows the whole rest, so the
    # solver takes it in one step: 3 accepted steps, no rejection, 20 evaluations.
    ys, stats = odeint(lambda t, y: tf.stack([y[1], -y[0]]), tf.constant([1.0, 0.0], tf.float64),
                       tf.constant([0.0, 2.0], tf.float64), rtol=1e-3, atol=1e-3,
                       return_stats=True)
    assert (int(stats.num_accepted_steps), int(stats.num_rejected_steps)) == (3, 0)
    assert int(stats.num_evaluations) == 20
    np.testing.assert_allclose(ys[-1].numpy(), [np.cos(2.0), -np.sin(2.0)], atol=1e-3)


def test_stats_count_evaluations():
    calls = []

    def field(t, y):
        calls.append(1)
        return -y

    _, stats = odeint(field, tf.ones([1], tf.float64), tf.constant([0.0, 1.0], tf.float64),
                      return_stats=True)
    assert int(stats.num_evaluations) == len(calls)
    steps = int(stats.num_accepted_steps) + int(stats.num_rejected_steps)
    assert len(calls) == 2 + 6 * steps   # f(t0), the first-step probe, 6 per dopri5 step


def test_single_output_time_returns_y0():
    ys = odeint(lambda t, y: -y, tf.constant([3.0]), tf.constant([1.0]))
    np.testing.assert_allclose(ys.numpy(), [[3.0]])


@pytest.mark.parametrize("method", ADAPTIVE)
@pytest.mark.parametrize("graph", [False, True])
def test_an_empty_state_solves_to_an_empty_solution(method, graph):
    # The RMS error norm of no entries was NaN: a false "NaN or inf" error.
    solve = lambda y0: odeint(lambda t, y: -y, y0, [0.0, 0.5, 1.0], method=method,  # noqa: E731
                              return_stats=True)
    ys, stats = (tf.function(solve) if graph else solve)(tf.zeros([0, 3]))
    assert ys.shape == (3, 0, 3) and int(stats.status) == 0
