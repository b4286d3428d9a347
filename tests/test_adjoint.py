"""Adjoint gradients equal backpropagation through the solver and central
finite differences, for every kind of `func`, several output times, and the
gradient with respect to the times themselves."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo import StatsRecorder, odeint

TIMES = tf.constant([0.0, 0.4, 1.0, 1.3], tf.float64)
RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(3, 8)) * 0.6
W2 = RNG.normal(size=(8, 3)) * 0.6
Y0 = tf.constant(RNG.normal(size=(2, 3)))


def closure_field():
    w1, w2 = tf.Variable(W1), tf.Variable(W2)
    return (lambda t, y: tf.tanh(y @ w1) @ w2 * tf.cos(t)), [w1, w2]


class ModuleField(tf.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.w2 = tf.Variable(W1), tf.Variable(W2)

    def __call__(self, t, y):
        return tf.tanh(y @ self.w1) @ self.w2 * tf.cos(t)


class LayerField(keras.layers.Layer):
    def build(self, t_shape, y_shape):
        self.w1 = self.add_weight(shape=W1.shape, initializer=keras.initializers.Constant(W1))
        self.w2 = self.add_weight(shape=W2.shape, initializer=keras.initializers.Constant(W2))

    def call(self, t, y):
        return tf.tanh(y @ self.w1) @ self.w2 * tf.cos(t)


def module_field():
    module = ModuleField()
    return module, list(module.trainable_variables)


def layer_field():
    layer = LayerField(dtype="float64")
    layer(TIMES[0], Y0)
    return layer, list(layer.trainable_variables)


FIELDS = {"closure": closure_field, "module": module_field, "keras_layer": layer_field}


def loss_of(func, y0=Y0, times=TIMES, **kwargs):
    ys = odeint(func, y0, times, rtol=1e-10, atol=1e-10, **kwargs)
    return tf.reduce_sum(ys[1] ** 2) + tf.reduce_sum(tf.sin(ys[2])) - tf.reduce_sum(ys[3] * ys[1])


def gradients(func, variables, **kwargs):
    times = tf.identity(TIMES)
    with tf.GradientTape() as tape:
        tape.watch([Y0, times])
        loss = loss_of(func, Y0, times, **kwargs)
    return [g.numpy() for g in tape.gradient(loss, variables + [Y0, times])]


@pytest.mark.parametrize("kind", sorted(FIELDS))
@pytest.mark.parametrize("adjoint", [True, "seminorm"])
def test_adjoint_equals_backprop(kind, adjoint):
    func, variables = FIELDS[kind]()
    expected = gradients(func, variables, adjoint=False)
    got = gradients(func, variables, adjoint=adjoint)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_adjoint_equals_central_finite_differences():
    func, variables = closure_field()
    got = gradients(func, variables, adjoint=True)
    eps = 1e-6
    for variable, grad in zip(variables, got):
        base = variable.numpy()
        for index in [(0, 0), (1, 5), (2, 7)] if base.shape[0] == 3 else [(0, 0), (5, 1), (7, 2)]:
            shifted = []
            for sign in (1, -1):
                value = base.copy()
                value[index] += sign * eps
                variable.assign(value)
                shifted.append(float(loss_of(func)))
            variable.assign(base)
            assert grad[index] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), rel=1e-5)
    y0_grad = got[2]
    base = Y0.numpy()
    for index in [(0, 0), (1, 2)]:
        shifted = []
        for sign in (1, -1):
            value = base.copy()
            value[index] += sign * eps
            shifted.append(float(loss_of(func, y0=tf.constant(value))))
        assert y0_grad[index] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), rel=1e-5)
    t_grad = got[3]
    for i in range(4):
        shifted = []
        for sign in (1, -1):
            times = TIMES.numpy().copy()
            times[i] += sign * eps
            shifted.append(float(loss_of(func, times=tf.constant(times))))
        assert t_grad[i] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), rel=1e-4, abs=1e-8)


@pytest.mark.parametrize("adjoint", [True, "seminorm"])
@pytest.mark.parametrize("method", ["rk4", "dopri5"])  # dL/dt: evaluated / reused (FSAL)
def test_adjoint_on_a_fixed_grid_equals_backprop(adjoint, method):
    func, variables = module_field()
    expected = gradients(func, variables, adjoint=False, method=method, step_size=0.05)
    got = gradients(func, variables, adjoint=adjoint, method=method, step_size=0.05)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_adjoint_gradients_in_tf_function_and_xla_match_eager():
    func, variables = layer_field()
    expected = gradients(func, variables, adjoint=True)
    for jit in (False, True):
        got = tf.function(lambda: gradients_tensors(func, variables), jit_compile=jit)()
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-6, atol=1e-7)


def gradients_tensors(func, variables):
    times = tf.identity(TIMES)
    with tf.GradientTape() as tape:
        tape.watch([Y0, times])
        loss = loss_of(func, Y0, times, adjoint=True)
    return tape.gradient(loss, variables + [Y0, times])


def _backward_evaluations(mode, calls):
    """Backward-solve evaluations of a benchmark-like 3-layer MLP field, as the
    StatsRecorder counts them; `calls` collects every field call."""
    rng = np.random.default_rng(1)
    weights = [tf.Variable(rng.normal(size=shape) / np.sqrt(shape[0]))
               for shape in [(8, 32), (32, 32), (32, 8)]]

    def field(t, y):
        calls.append(1)
        return tf.tanh(tf.tanh(y @ weights[0]) @ weights[1]) @ weights[2]

    recorder = StatsRecorder()
    with tf.GradientTape() as tape:
        ys = odeint(field, tf.constant(rng.normal(size=(64, 8))),
                    tf.constant([0.0, 1.0], tf.float64), adjoint=mode, rtol=1e-6, atol=1e-6,
                    backward_stats=recorder)
        loss = tf.reduce_sum(ys[-1] ** 2)
    calls.clear()
    tape.gradient(loss, weights)
    return int(recorder.result().num_evaluations)


def test_backward_solve_starts_with_the_forward_final_step():
    # Linear decay: with the seminorm the backward state and adjoint channels are as
    # hard to integrate as the forward, so a backward solve that starts at the
    # forward's last step size needs no starting-step probe and no ramp-up.
    rate = tf.Variable(1.5, dtype=tf.float64)
    recorder = StatsRecorder()
    with tf.GradientTape() as tape:
        ys, forward = odeint(lambda t, y: -rate * y, tf.ones([4], tf.float64),
                             tf.constant([0.0, 1.0], tf.float64), adjoint="seminorm",
                             rtol=1e-7, atol=1e-7, return_stats=True, backward_stats=recorder)
        loss = tf.reduce_sum(ys[-1])
    assert float(tape.gradient(loss, rate)) == pytest.approx(-4 * np.exp(-1.5), rel=1e-6)
    backward = recorder.result()
    forward_steps = int(forward.num_accepted_steps) + int(forward.num_rejected_steps)
    backward_steps = int(backward.num_accepted_steps) + int(backward.num_rejected_steps)
    assert int(backward.num_evaluations) == 1 + 6 * backward_steps
    assert backward_steps <= forward_steps


def test_backward_stats_count_the_backward_evaluations():
    calls = []
    backward = _backward_evaluations(True, calls)
    # Every call of func in the backward pass is a backward-solve evaluation: dL/dt
    # reuses f(t_i, y_i) from the solves that started at t_i.
    assert backward == len(calls)


def test_seminorm_needs_fewer_backward_evaluations():
    full = _backward_evaluations(True, [])
    seminorm = _backward_evaluations("seminorm", [])
    assert seminorm <= 0.85 * full, (full, seminorm)
