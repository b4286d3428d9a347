"""Eager, tf.function and XLA give the same solution."""
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo import odeint


def _field(t, y):
    return tf.tanh(y) * tf.cos(t) - 0.1 * y


@pytest.mark.parametrize("kwargs", [dict(method="dopri5", rtol=1e-6, atol=1e-6),
                                    dict(method="tsit5", rtol=1e-6, atol=1e-6),
                                    dict(method="rk4", step_size=0.1)])
def test_eager_graph_and_xla_agree(kwargs):
    y0 = tf.constant(np.linspace(-1, 1, 6).reshape(2, 3), tf.float32)
    t = tf.constant([0.0, 0.7, 2.0])

    def solve():
        return odeint(_field, y0, t, return_stats=True, **kwargs)

    eager, eager_stats = solve()
    graph, graph_stats = tf.function(solve)()
    xla, xla_stats = tf.function(solve, jit_compile=True)()
    np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=1e-6)
    np.testing.assert_allclose(xla.numpy(), eager.numpy(), atol=1e-5)
    assert int(graph_stats.num_evaluations) == int(eager_stats.num_evaluations)
    assert abs(int(xla_stats.num_evaluations) - int(eager_stats.num_evaluations)) <= 12


def test_unknown_batch_size_in_a_traced_function():
    solve = tf.function(
        lambda y0: odeint(_field, y0, tf.constant([0.0, 1.0])),
        input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    assert solve(tf.ones([5, 3])).shape == (2, 5, 3)
    assert solve(tf.ones([2, 3])).shape == (2, 2, 3)
