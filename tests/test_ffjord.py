"""FFJORD bijector and trace estimators, checked against analytic oracles in float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from ode_zoo.flows import (FFJORD, TRACE_ESTIMATORS, exact_trace, hutchinson_trace,
                           stateless_seed)
from ode_zoo.layers.vector_fields import DenseVectorField
from ode_zoo.solvers import StatsRecorder

tfd = tfp.distributions

A = np.array([[-0.5, 1.0, 0.2], [-0.3, 0.1, 0.4], [0.6, -0.2, -0.8]])
T0, T1 = 0.25, 1.0
TOL = {tf.float32: dict(rtol=1e-6, atol=1e-6, check=2e-4),
       tf.float64: dict(rtol=1e-10, atol=1e-10, check=1e-8)}
RNG = np.random.default_rng(0)
W1, B1, W2 = RNG.normal(size=(2, 8)), RNG.normal(size=8), 0.5 * RNG.normal(size=(8, 2))


def expm(m: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a Taylor series."""
    squarings = max(0, int(np.ceil(np.log2(max(np.abs(m).sum(1).max(), 1e-12)))) + 1)
    scaled, term, total = m / 2 ** squarings, np.eye(len(m)), np.eye(len(m))
    for k in range(1, 25):
        term = term @ scaled / k
        total = total + term
    for _ in range(squarings):
        total = total @ total
    return total


def linear_field(dtype):
    a = tf.constant(A, dtype)
    return lambda t, z: tf.matmul(z, a, transpose_b=True)


def tanh_field(dtype):
    w1, b1, w2 = (tf.constant(w, dtype) for w in (W1, B1, W2))
    return lambda t, z: tf.matmul(tf.tanh(tf.matmul(z, w1) + t * b1), w2)


def flow(fn, dtype, **kwargs):
    tol = TOL[dtype]
    return FFJORD(fn, t0=T0, t1=T1, rtol=tol["rtol"], atol=tol["atol"], **kwargs)


DTYPES = [tf.float32, tf.float64]


def test_expm_oracle_matches_its_defining_ode():
    # d/dt expm(A t) = A expm(A t), by central differences.
    h = 1e-5
    derivative = (expm(A * (0.7 + h)) - expm(A * (0.7 - h))) / (2 * h)
    np.testing.assert_allclose(derivative, A @ expm(A * 0.7), atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_field_maps_by_expm_and_log_det_is_trace_times_span(dtype):
    bijector = flow(linear_field(dtype), dtype)
    x = tf.constant(RNG.normal(size=(4, 3)), dtype)
    y = bijector.forward(x)
    fldj = bijector.forward_log_det_jacobian(x, event_ndims=1)
    assert y.dtype == dtype and fldj.dtype == dtype and fldj.shape == [4]
    check = TOL[dtype]["check"]
    np.testing.assert_allclose(y, x.numpy() @ expm(A * (T1 - T0)).T, rtol=check, atol=check)
    np.testing.assert_allclose(fldj, np.full(4, np.trace(A) * (T1 - T0)), rtol=check, atol=check)
    y_new = tf.constant(y.numpy())                 # a new tensor: no cache hit
    np.testing.assert_allclose(bijector.inverse_log_det_jacobian(y_new, event_ndims=1), -fldj,
                               rtol=check, atol=check)


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_field_shifts_by_its_value_with_zero_log_det(dtype):
    c = tf.constant([1.5, -2.0], dtype)
    bijector = flow(lambda t, z: tf.broadcast_to(c, tf.shape(z)), dtype)
    x = tf.constant(RNG.normal(size=(3, 2)), dtype)
    np.testing.assert_allclose(bijector.forward(x), x + c * (T1 - T0), atol=TOL[dtype]["check"])
    np.testing.assert_array_equal(bijector.forward_log_det_jacobian(x, event_ndims=1),
                                  np.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_log_prob_equals_change_of_variables_with_full_jacobian(dtype):
    bijector = flow(tanh_field(dtype), dtype)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2, dtype))
    dist = tfd.TransformedDistribution(base, bijector)
    x = tf.constant(RNG.normal(size=(5, 2)), dtype)
    log_prob = dist.log_prob(x)
    x_new = tf.constant(x.numpy())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_new)
        z = bijector.inverse(x_new)
    jacobian = tape.batch_jacobian(z, x_new, experimental_use_pfor=False)   # [5, 2, 2]
    brute_force = base.log_prob(z) + tf.math.log(tf.abs(tf.linalg.det(jacobian)))
    check = TOL[dtype]["check"]
    np.testing.assert_allclose(log_prob, brute_force, rtol=check, atol=check)
    assert not np.allclose(jacobian.numpy(), np.eye(2))   # the map is not trivial


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_of_forward_is_identity_and_sampling_works(dtype):
    bijector = flow(tanh_field(dtype), dtype)
    x = tf.constant(RNG.normal(size=(6, 2)), dtype)
    y = bijector.forward(x)
    assert not np.allclose(y, x, atol=0.1)
    x_back = bijector.inverse(tf.constant(y.numpy()))
    np.testing.assert_allclose(x_back, x, atol=TOL[dtype]["check"])
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2, dtype)),
                                       bijector)
    assert dist.sample(3, seed=1).shape == [3, 2]
    assert dist.sample(seed=1).shape == [2]
    assert dist.sample(seed=1).dtype == dtype


def test_log_det_comes_from_the_same_solve_as_the_map():
    calls = []
    field = tanh_field(tf.float64)

    def counted(t, z):
        calls.append(1)
        return field(t, z)
    bijector = FFJORD(counted, method="rk4", num_steps=4)
    x, y = tf.constant(RNG.normal(size=(2, 2))), tf.constant(RNG.normal(size=(2, 2)))
    bijector.forward(x)
    one_solve = len(calls)
    bijector.forward_log_det_jacobian(x, event_ndims=1)
    assert one_solve > 0 and len(calls) == one_solve
    dist = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2, tf.float64)),
                                       bijector)
    dist.log_prob(y)
    assert len(calls) == 2 * one_solve


@pytest.mark.parametrize("trace,noise", [("hutchinson_gaussian", tf.random.stateless_normal),
                                         ("hutchinson_rademacher", None)])
def test_hutchinson_noise_is_drawn_once_per_solve_from_the_seed(trace, noise):
    # For a linear field εᵀAε is constant in time, so the log-det is (t1 - t0)·εᵀAε
    # only when one ε serves the whole (adaptive) solve.
    x = tf.constant(RNG.normal(size=(5, 3)))
    bijector = flow(linear_field(tf.float64), tf.float64, trace=trace, seed=7)
    fldj = bijector.forward_log_det_jacobian(x, event_ndims=1).numpy()
    eps = TRACE_ESTIMATORS[trace].sample_noise(tf.shape(x), tf.float64,
                                               stateless_seed(7)).numpy()
    if noise is None:
        assert set(np.unique(eps)) == {-1.0, 1.0}
    else:
        np.testing.assert_array_equal(eps, noise([5, 3], stateless_seed(7), dtype=tf.float64))
    np.testing.assert_allclose(fldj, (T1 - T0) * np.einsum("ni,ij,nj->n", eps, A, eps),
                               rtol=1e-8, atol=1e-8)
    again = flow(linear_field(tf.float64), tf.float64, trace=trace, seed=7)
    np.testing.assert_array_equal(again.forward_log_det_jacobian(x, event_ndims=1), fldj)
    other = flow(linear_field(tf.float64), tf.float64, trace=trace, seed=8)
    assert not np.allclose(other.forward_log_det_jacobian(x, event_ndims=1), fldj)


@pytest.mark.parametrize("trace", ["hutchinson_gaussian", "hutchinson_rademacher"])
def test_hutchinson_mean_over_seeds_converges_to_exact_log_det(trace):
    # The same fixed grid for both estimators: z's trajectory is identical, only the
    # trace channel differs; its mean over 5 seeds × 300 noise rows is within 4 standard errors.
    x = tf.constant(np.tile(RNG.normal(size=(1, 2)), (300, 1)))
    options = dict(t0=T0, t1=T1, method="rk4", num_steps=6)
    exact = FFJORD(tanh_field(tf.float64), **options).forward_log_det_jacobian(x, 1).numpy()
    estimates = np.concatenate([
        FFJORD(tanh_field(tf.float64), trace=trace, seed=s, **options)
        .forward_log_det_jacobian(x, event_ndims=1).numpy() for s in range(5)])
    standard_error = estimates.std() / np.sqrt(estimates.size)
    assert estimates.std() > 0
    assert abs(estimates.mean() - exact[0]) < 4 * standard_error


@pytest.mark.parametrize("dtype", DTYPES)
def test_trace_estimators_on_a_linear_field(dtype):
    field, z, t = linear_field(dtype), tf.ones([2, 3], dtype), tf.constant(0.0, dtype)
    exact = exact_trace(field, t, z)
    np.testing.assert_allclose(exact.trace, [np.trace(A)] * 2, rtol=1e-6)
    np.testing.assert_allclose(exact.frobenius, [np.sum(A ** 2)] * 2, rtol=1e-6)
    eps = tf.constant([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], dtype)
    estimate = hutchinson_trace(field, t, z, eps)
    np.testing.assert_allclose(estimate.trace, np.einsum("ni,ij,nj->n", eps, A, eps), rtol=1e-6)
    np.testing.assert_allclose(estimate.frobenius, np.sum((eps.numpy() @ A) ** 2, 1), rtol=1e-6)
    assert exact.trace.dtype == estimate.trace.dtype == dtype


def kinetic_by_quadrature(z0: np.ndarray, span: float) -> np.ndarray:
    """∫_0^span ‖A e^{At} z0‖² dt per row of z0, by composite Simpson on 401 points."""
    times = np.linspace(0.0, span, 401)
    values = np.array([np.sum((z0 @ expm(A * s).T @ A.T) ** 2, axis=1) for s in times])
    weights = np.ones(401)
    weights[1:-1:2], weights[2:-1:2] = 4, 2
    return weights @ values * (times[1] - times[0]) / 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_regularizers_of_a_linear_field_match_closed_forms(dtype):
    x = tf.constant(RNG.normal(size=(4, 3)), dtype)
    check = TOL[dtype]["check"]
    bijector = flow(linear_field(dtype), dtype, regularize=True)
    result = bijector.forward_with_regularizers(x)
    kinetic = kinetic_by_quadrature(x.numpy(), T1 - T0)
    np.testing.assert_allclose(result.kinetic, kinetic, rtol=check)
    np.testing.assert_allclose(result.jacobian, [np.sum(A ** 2) * (T1 - T0)] * 4, rtol=check)
    np.testing.assert_allclose(result.log_det_jacobian, [np.trace(A) * (T1 - T0)] * 4, rtol=check)
    np.testing.assert_allclose(result.output, bijector.forward(x))
    back = bijector.inverse_with_regularizers(tf.constant(result.output.numpy()))
    np.testing.assert_allclose(back.output, x, atol=check)
    np.testing.assert_allclose(back.kinetic, kinetic, rtol=check)   # positive, same path
    np.testing.assert_allclose(back.log_det_jacobian, -result.log_det_jacobian, rtol=check)


def test_gaussian_jacobian_regularizer_has_expectation_frobenius_times_span():
    x = tf.constant(RNG.normal(size=(400, 3)))
    bijector = FFJORD(linear_field(tf.float64), trace="hutchinson_gaussian", seed=3,
                      regularize=True, t0=T0, t1=T1, method="rk4", num_steps=4)
    jacobian = bijector.forward_with_regularizers(x).jacobian.numpy()
    eps = TRACE_ESTIMATORS["hutchinson_gaussian"].sample_noise(
        tf.shape(x), tf.float64, stateless_seed(3)).numpy()
    np.testing.assert_allclose(jacobian, np.sum((eps @ A) ** 2, 1) * (T1 - T0), rtol=1e-10)
    expectation = np.sum(A ** 2) * (T1 - T0)
    assert abs(jacobian.mean() - expectation) < 4 * jacobian.std() / np.sqrt(400)


def test_adjoint_gradients_of_a_keras_field_equal_backprop_gradients():
    field = DenseVectorField(hidden_units=(6,), dtype="float64")
    field(tf.constant(0.0, tf.float64), tf.zeros([1, 2], tf.float64))
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2, tf.float64))
    x = tf.constant(RNG.normal(size=(4, 2)))

    def gradients(adjoint):
        bijector = FFJORD(field, trace="hutchinson_rademacher", seed=5, regularize=True,
                          adjoint=adjoint, rtol=1e-9, atol=1e-9)
        with tf.GradientTape() as tape:
            log_prob = tfd.TransformedDistribution(base, bijector).log_prob(x)
            result = bijector.inverse_with_regularizers(x)     # cached: same solve
            loss = -tf.reduce_mean(log_prob) + 0.01 * tf.reduce_mean(
                result.kinetic + result.jacobian)
        return tape.gradient(loss, field.trainable_variables)

    backprop, adjoint = gradients(False), gradients(True)
    assert all(g is not None for g in adjoint) and len(adjoint) == len(backprop) > 0
    for a, b in zip(adjoint, backprop):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert max(float(tf.reduce_max(tf.abs(g))) for g in adjoint) > 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_adjoint_gradient_of_a_plain_callable_equals_the_closed_form(dtype):
    # f = -k z: inverse(x) = x e^{k T}, ildj = k T D, so for a standard normal base
    # log_prob(x) = base.log_prob(x e^{kT}) + k T D and d/dk = T D - T e^{2kT} ‖x‖².
    k = tf.Variable(tf.constant(0.3, dtype))
    span, x = T1 - T0, tf.constant([[0.5, -1.0], [2.0, 0.1]], dtype)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2, dtype))
    dist = tfd.TransformedDistribution(base, flow(lambda t, z: -k * z, dtype, adjoint=True))
    check = TOL[dtype]["check"]
    for value in (0.3, -0.4):                      # the same x after a weight change
        k.assign(value)
        with tf.GradientTape() as tape:
            log_prob = dist.log_prob(x)
            total = tf.reduce_sum(log_prob)
        np.testing.assert_allclose(log_prob, base.log_prob(x * np.exp(value * span))
                                   + value * span * 2, rtol=check, atol=check)
        expected = np.sum(span * 2 - span * np.exp(2 * value * span) * np.sum(x.numpy() ** 2, 1))
        np.testing.assert_allclose(tape.gradient(total, k), expected,
                                   rtol=check)


def test_log_prob_in_a_tf_function_matches_eager_and_unseeded_noise_is_fresh():
    # 40 Rademacher signs: two fresh draws coincide with probability 2⁻⁴⁰ (6 signs: 1/64).
    x = tf.constant(RNG.normal(size=(20, 2)))
    options = dict(trace="hutchinson_rademacher", method="rk4", num_steps=3)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(2, tf.float64))
    seeded = tfd.TransformedDistribution(base, FFJORD(tanh_field(tf.float64), seed=2, **options))
    np.testing.assert_allclose(tf.function(seeded.log_prob)(x), seeded.log_prob(x), rtol=1e-12)
    unseeded = tfd.TransformedDistribution(base, FFJORD(tanh_field(tf.float64), **options))
    graph_log_prob = tf.function(unseeded.log_prob)
    assert not np.allclose(graph_log_prob(x), graph_log_prob(x))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="available trace estimators are"):
        FFJORD(lambda t, z: z, trace="hutchinson")
    with pytest.raises(ValueError, match="Unknown method"):
        FFJORD(lambda t, z: z, method="rk5")
    with pytest.raises(ValueError, match="must differ"):
        FFJORD(lambda t, z: z, t0=1.0, t1=1.0)
    with pytest.raises(TypeError, match="callable"):
        FFJORD("not a field")
    with pytest.raises(ValueError, match="regularize=True"):
        FFJORD(lambda t, z: z).forward_with_regularizers(tf.ones([1, 2]))
    with pytest.raises(ValueError, match=r"pass adjoint=True or 'seminorm'"):
        FFJORD(lambda t, z: z, backward_stats_sink=StatsRecorder())


def test_stats_sink_records_each_solve_and_nothing_for_cached_results():
    recorder = StatsRecorder()
    bijector = FFJORD(linear_field(tf.float64), method="rk4", num_steps=3, stats_sink=recorder)
    x = tf.constant(RNG.normal(size=(2, 3)))
    y = bijector.forward(x)
    assert int(recorder.result().num_evaluations) == 12            # 3 steps × 4 stages
    assert int(recorder.result().num_accepted_steps) == 3
    recorder.record(recorder.result()._replace(num_evaluations=0))
    bijector.forward_log_det_jacobian(x, event_ndims=1)           # cached: no solve
    bijector.inverse(y)                                           # cached: y came from x
    assert int(recorder.result().num_evaluations) == 0


@pytest.mark.parametrize("adjoint", [True, "seminorm"])
def test_backward_stats_sink_records_the_adjoint_solve_in_a_tf_function(adjoint):
    k = tf.Variable(0.3, dtype=tf.float64)
    forward, backward = StatsRecorder(), StatsRecorder()
    bijector = FFJORD(lambda t, z: -k * z, method="rk4", num_steps=5, adjoint=adjoint,
                      stats_sink=forward, backward_stats_sink=backward)

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(bijector.inverse_log_det_jacobian(x, event_ndims=1))
        return tape.gradient(loss, k)

    assert float(gradient(tf.ones([2, 2], tf.float64))) == pytest.approx(2 * 2 * 1.0)
    assert int(forward.result().num_evaluations) == 20
    assert int(backward.result().num_evaluations) == 20           # 5 rk4 steps backwards
