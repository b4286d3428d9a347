"""Fixed-step solves converge at each method's order and land exactly on the
output times."""
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo import odeint
from ode_zoo.solvers.tableaus import TABLEAUS

A = np.array([[-0.3, 1.0], [-1.0, -0.3]])
Y0 = np.array([1.0, 0.5])


def linear_field(t, y):
    return tf.linalg.matvec(tf.constant(A), y)


def exact_linear(t):
    eigenvalues, vectors = np.linalg.eig(A)
    coefficients = np.linalg.solve(vectors, Y0)
    return np.real(vectors @ (coefficients * np.exp(eigenvalues * t)))


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_convergence_order_on_a_linear_ode(name):
    order = TABLEAUS[name].order
    t = tf.constant([0.0, 2.0], tf.float64)
    errors = []
    for steps in (8, 16, 32):
        ys = odeint(linear_field, tf.constant(Y0), t, method=name, num_steps=steps)
        errors.append(np.max(np.abs(ys[-1].numpy() - exact_linear(2.0))))
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(observed - order) < 0.35), (name, order, observed, errors)


def test_outputs_land_exactly_on_uneven_times():
    times = np.array([0.0, 0.05, 0.5, 0.52, 2.0])
    ys, stats = odeint(linear_field, tf.constant(Y0), tf.constant(times), method="rk4",
                       step_size=0.01, return_stats=True)
    expected = np.stack([exact_linear(t) for t in times])
    np.testing.assert_allclose(ys.numpy(), expected, atol=1e-9)
    # 5 + 45 + 2 + 148 steps: each interval holds whole steps no longer than 0.01.
    assert int(stats.num_accepted_steps) == 200
    assert int(stats.num_evaluations) == 4 * 200


def test_step_size_is_an_upper_bound_per_interval():
    _, stats = odeint(linear_field, tf.constant(Y0), tf.constant([0.0, 1.0, 1.25], tf.float64),
                      method="euler", step_size=0.3, return_stats=True)
    assert int(stats.num_accepted_steps) == 4 + 1


def test_num_steps_spans_the_whole_interval():
    _, stats = odeint(linear_field, tf.constant(Y0), tf.constant([0.0, 3.0], tf.float64),
                      method="midpoint", num_steps=7, return_stats=True)
    assert int(stats.num_accepted_steps) == 7


def test_fsal_methods_reuse_the_last_stage_on_a_fixed_grid():
    _, stats = odeint(linear_field, tf.constant(Y0), tf.constant([0.0, 1.0], tf.float64),
                      method="dopri5", num_steps=10, return_stats=True)
    assert int(stats.num_evaluations) == 1 + 6 * 10
