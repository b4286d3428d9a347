"""Flow matching numerics: the conditional paths against their formulas, derivatives
and marginals, squared distances against numpy, the Sinkhorn plan's marginals and
its optimal permutation, OT pairings beating the identity coupling, and a 2-D flow
trained by flow matching whose FFJORD log-density matches the true density."""
from __future__ import annotations

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from ode_zoo.flows import FFJORD
from ode_zoo.flows.flow_matching import (independent_path, ot_path, sinkhorn_log_plan,
                                         sinkhorn_pairing, squared_distances)
from ode_zoo.layers import DenseVectorField

tfd = tfp.distributions
RNG = np.random.default_rng(0)


def _batch(shape, seed):
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=shape), tf.float32),
            tf.constant(rng.normal(size=shape) + 1.0, tf.float32))


# --- the paths: end points, formulas, velocities ---------------------------------------------

@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_ot_path_starts_at_noise_and_ends_at_data_plus_sigma_min_noise(sigma_min):
    x0, x1 = _batch((3, 5), 1)
    x_t, _ = ot_path(x0, x1, tf.zeros([3]), sigma_min)
    np.testing.assert_allclose(x_t, x0, atol=1e-7)
    x_t, _ = ot_path(x0, x1, tf.ones([3]), sigma_min)
    np.testing.assert_allclose(x_t, x1 + sigma_min * x0, atol=1e-6)


def test_ot_path_matches_its_formula_with_per_example_times():
    x0, x1 = _batch((4, 3), 2)
    t = np.array([0.0, 0.3, 0.7, 1.0], np.float32)
    x_t, u_t = ot_path(x0, x1, tf.constant(t), 0.05)
    expected = (1 - 0.95 * t[:, None]) * x0.numpy() + t[:, None] * x1.numpy()
    np.testing.assert_allclose(x_t, expected, atol=1e-6)
    np.testing.assert_allclose(u_t, x1.numpy() - 0.95 * x0.numpy(), atol=1e-6)


def test_independent_path_ends_and_formula():
    x0, x1 = _batch((3, 4), 3)
    noise = tf.constant(RNG.normal(size=(3, 4)), tf.float32)
    x_t, u_t = independent_path(x0, x1, tf.zeros([3]), 0.2, noise)
    np.testing.assert_allclose(x_t, x0 + 0.2 * noise, atol=1e-6)
    x_t, _ = independent_path(x0, x1, tf.ones([3]), 0.2, noise)
    np.testing.assert_allclose(x_t, x1 + 0.2 * noise, atol=1e-6)
    x_t, u_t = independent_path(x0, x1, tf.constant([0.25, 0.5, 0.9]), 0.2, noise)
    t = np.array([0.25, 0.5, 0.9])[:, None]
    np.testing.assert_allclose(x_t, (1 - t) * x0 + t * x1 + 0.2 * noise.numpy(), atol=1e-6)
    np.testing.assert_allclose(u_t, x1 - x0, atol=1e-6)


def _independent(x0, x1, t, sigma=0.3):
    noise = tf.constant(np.random.default_rng(4).normal(size=x0.shape), x0.dtype)
    return independent_path(x0, x1, t, sigma, noise)


@pytest.mark.parametrize("path", [lambda x0, x1, t: ot_path(x0, x1, t, 0.0),
                                  lambda x0, x1, t: ot_path(x0, x1, t, 0.1),
                                  _independent], ids=["ot", "ot_sigma_min", "independent"])
def test_velocity_is_the_time_derivative_of_the_path(path):
    x0, x1 = (tf.cast(x, tf.float64) for x in _batch((5, 2, 2, 3), 5))
    t = tf.constant([0.0, 0.2, 0.5, 0.8, 1.0], tf.float64)
    # Forward-mode derivative over every example's own time.
    with tf.autodiff.ForwardAccumulator(t, tf.ones_like(t)) as accumulator:
        x_t, u_t = path(x0, x1, t)
    np.testing.assert_allclose(accumulator.jvp(x_t), u_t, atol=1e-12)
    # And a central difference.
    h = 1e-4
    difference = (path(x0, x1, t + h)[0] - path(x0, x1, t - h)[0]) / (2 * h)
    np.testing.assert_allclose(difference, u_t, atol=1e-9)
    assert not np.allclose(u_t, 0.0)


@pytest.mark.parametrize("path", ["ot", "independent"])
def test_per_example_times_broadcast_over_image_shaped_inputs(path):
    x0, x1 = _batch((3, 4, 4, 2), 6)
    t = tf.constant([0.1, 0.5, 0.9])
    noise = tf.constant(RNG.normal(size=(3, 4, 4, 2)), tf.float32)
    fn = ((lambda a, b, s: ot_path(a, b, s, 0.01)) if path == "ot"
          else (lambda a, b, s: independent_path(a, b, s, 0.1, noise)))
    x_t, u_t = fn(x0, x1, t)
    assert x_t.shape == u_t.shape == (3, 4, 4, 2)
    for i in range(3):                    # each image on its own time, every pixel
        noise_i = noise[i:i + 1]
        if path == "independent":
            x_i, _ = independent_path(x0[i:i + 1], x1[i:i + 1], t[i:i + 1], 0.1, noise_i)
        else:
            x_i, _ = ot_path(x0[i:i + 1], x1[i:i + 1], t[i:i + 1], 0.01)
        np.testing.assert_allclose(x_t[i:i + 1], x_i, atol=1e-6)
    # A scalar time is the same time for every image.
    np.testing.assert_allclose(fn(x0, x1, tf.constant(0.5))[0], fn(x0, x1, tf.fill([3], 0.5))[0],
                               atol=1e-6)


# --- marginals -----------------------------------------------------------------------------

N_DRAWS, N_DIMS = 20000, 3


def _moments_ok(x_t, mean, std):
    """Per dimension, the sample mean and std are within 5 standard errors of mean, std."""
    x = x_t.numpy().astype(np.float64)
    se_mean = std / math.sqrt(N_DRAWS)
    se_std = std / math.sqrt(2 * N_DRAWS)
    np.testing.assert_allclose(x.mean(0), mean, atol=5 * se_mean + 1e-7)
    np.testing.assert_allclose(x.std(0), std, atol=5 * se_std + 1e-7)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.75, 1.0])
def test_ot_path_marginal_for_a_fixed_data_point(t):
    sigma_min = 0.1
    point = tf.constant([2.0, -1.0, 0.5])
    x0 = tf.random.stateless_normal([N_DRAWS, N_DIMS], seed=[1, int(10 * t)])
    x1 = tf.broadcast_to(point, [N_DRAWS, N_DIMS])
    x_t, _ = ot_path(x0, x1, tf.fill([N_DRAWS], t), sigma_min)
    _moments_ok(x_t, t * point.numpy(), 1 - (1 - sigma_min) * t)


@pytest.mark.parametrize("t", [0.0, 0.5, 1.0])
def test_independent_path_marginal_for_a_fixed_data_point(t):
    sigma = 0.4
    point = tf.constant([2.0, -1.0, 0.5])
    x0 = tf.random.stateless_normal([N_DRAWS, N_DIMS], seed=[2, int(10 * t)])
    noise = tf.random.stateless_normal([N_DRAWS, N_DIMS], seed=[3, int(10 * t)])
    x1 = tf.broadcast_to(point, [N_DRAWS, N_DIMS])
    x_t, _ = independent_path(x0, x1, tf.fill([N_DRAWS], t), sigma, noise)
    _moments_ok(x_t, t * point.numpy(), math.sqrt((1 - t) ** 2 + sigma ** 2))


# --- squared distances ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 2)])
def test_squared_distances_match_numpy(shape):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=shape), 3.0 + rng.normal(size=shape)
    expected = ((a.reshape(shape[0], 1, -1) - b.reshape(1, shape[0], -1)) ** 2).sum(-1)
    cost = squared_distances(tf.constant(a, tf.float32), tf.constant(b, tf.float32))
    assert cost.shape == (shape[0], shape[0])
    np.testing.assert_allclose(cost, expected, rtol=1e-5, atol=1e-4)
    # Identical batches: an exactly zero (never negative) diagonal despite round-off.
    same = squared_distances(tf.constant(100.0 + a, tf.float32), tf.constant(100.0 + a, tf.float32))
    assert np.all(same.numpy() >= 0.0)
    np.testing.assert_allclose(np.diag(same), 0.0, atol=0.1)


# --- Sinkhorn -------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, n, regularization", [(2, 32, 0.1), (2, 64, 0.05), (784, 64, 0.01)])
def test_sinkhorn_plan_has_uniform_marginals(dim, n, regularization):
    x0, x1 = _batch((n, dim), 8)
    plan = tf.exp(sinkhorn_log_plan(squared_distances(x0, x1), regularization)).numpy()
    assert plan.shape == (n, n) and np.all(np.isfinite(plan))
    np.testing.assert_allclose(plan.sum(0), 1.0 / n, rtol=1e-3)
    np.testing.assert_allclose(plan.sum(1), 1.0 / n, rtol=1e-3)
    assert plan.sum() == pytest.approx(1.0, abs=1e-4)


def test_sinkhorn_plan_concentrates_on_a_known_optimal_permutation():
    # x1 is x0 shuffled (plus a little noise), points far apart: x0[i]'s partner is
    # x1[j] with perm[j] = i.
    n = 8
    rng = np.random.default_rng(9)
    x0 = np.stack([np.arange(n) * 3.0, np.zeros(n)], 1)
    perm = rng.permutation(n)
    x1 = x0[perm] + 0.05 * rng.normal(size=(n, 2))
    partner = np.argsort(perm)
    plan = tf.exp(sinkhorn_log_plan(squared_distances(tf.constant(x0, tf.float32),
                                                      tf.constant(x1, tf.float32)), 0.01)).numpy()
    np.testing.assert_array_equal(plan.argmax(1), partner)
    assert plan[np.arange(n), partner].sum() > 0.99
    pairs = sinkhorn_pairing(tf.constant(x0, tf.float32), tf.constant(x1, tf.float32), 0.01,
                             seed=tf.constant([0, 1]))
    np.testing.assert_array_equal(pairs, partner)


def test_sinkhorn_plan_finds_the_brute_force_optimum_of_random_points():
    n = 6
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        x0, x1 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
        cost = ((x0[:, None] - x1[None]) ** 2).sum(-1)
        costs = {p: cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(n))}
        best = min(costs, key=costs.get)
        # The runner-up permutations cost within 1 % of the best: a small ε separates them.
        plan = tf.exp(sinkhorn_log_plan(tf.constant(cost, tf.float32), 0.001, 2000)).numpy()
        assert plan[np.arange(n), list(best)].sum() > 0.95, seed
        assert (plan * cost).sum() * n < costs[best] * 1.002


def _pairing_costs(dim, seed, n=64):
    """Mean squared distance of the Sinkhorn pairs, of the identity pairs, and the
    standard error of the latter (random pairs: a baseline and its noise)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(n, dim))
    if dim == 2:
        x1 = rng.normal(size=(n, 2)) * [0.5, 1.5] + [2.0, 0.0]
    else:                                  # image-like: a few prototypes in [-1, 1] plus noise
        prototypes = rng.uniform(-1, 1, size=(4, dim))
        x1 = np.clip(prototypes[rng.integers(0, 4, n)] + 0.2 * rng.normal(size=(n, dim)), -1, 1)
    j = sinkhorn_pairing(tf.constant(x0, tf.float32), tf.constant(x1, tf.float32),
                         seed=tf.constant([seed, 0])).numpy()
    identity = ((x0 - x1) ** 2).sum(1)
    return ((x0 - x1[j]) ** 2).sum(1).mean(), identity.mean(), identity.std() / math.sqrt(n)


# Measured mean cost ratios: 0.55 (2-D), 0.964 (784-D); gains of 3.9-5.3 (2-D) and 5-8
# (784-D) standard errors of the identity coupling's mean cost.
@pytest.mark.parametrize("dim, max_mean_ratio", [(2, 0.7), (784, 0.98)])
def test_sinkhorn_pairing_transports_cheaper_than_the_identity_coupling(dim, max_mean_ratio):
    ratios = []
    for seed in range(5):
        paired, identity, standard_error = _pairing_costs(dim, seed)
        assert identity - paired > 2.5 * standard_error, (seed, paired, identity, standard_error)
        ratios.append(paired / identity)
    assert np.mean(ratios) < max_mean_ratio, ratios


def test_sinkhorn_pairing_is_deterministic_with_a_seed_and_a_valid_index_set():
    x0, x1 = _batch((32, 784), 11)          # a diffuse plan: the draw matters
    first = sinkhorn_pairing(x0, x1, seed=tf.constant([3, 4]))
    assert first.dtype == tf.int32 and first.shape == (32,)
    assert np.all((first.numpy() >= 0) & (first.numpy() < 32))
    np.testing.assert_array_equal(first, sinkhorn_pairing(x0, x1, seed=tf.constant([3, 4])))
    traced = tf.function(lambda a, b, s: sinkhorn_pairing(a, b, seed=s))
    np.testing.assert_array_equal(first, traced(x0, x1, tf.constant([3, 4])))
    assert not np.array_equal(first, sinkhorn_pairing(x0, x1, seed=tf.constant([5, 6])))
    assert sinkhorn_pairing(x0, x1).shape == (32,)     # unseeded: a fresh draw, same shape


# --- a 2-D CNF trained by flow matching has the true density --------------------------------

MU = np.array([1.0, -0.5], np.float32)
SCALE = np.array([0.5, 0.7], np.float32)
TARGET = tfd.MultivariateNormalDiag(MU, SCALE)
SIGMA_MIN = 1e-3
TRAIN_STEPS, BATCH = 4000, 256
# Measured: mean |Δ log p| = 0.058 after training; 1.07 untrained, 1.18 for the zero field.
LOG_DENSITY_TOL = 0.15


def _new_field() -> DenseVectorField:
    keras.utils.set_random_seed(0)
    field = DenseVectorField((64, 64), activation="tanh")
    field.build((), (None, 2))
    return field


def _train(field: DenseVectorField) -> None:
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, TRAIN_STEPS))

    @tf.function
    def step(k):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(0, tf.int64), k]), 3)
        x1 = MU + SCALE * tf.random.stateless_normal([BATCH, 2], seeds[0])
        x0 = tf.random.stateless_normal([BATCH, 2], seeds[1])
        t = tf.random.stateless_uniform([BATCH], seeds[2])
        x_t, u_t = ot_path(x0, x1, t, SIGMA_MIN)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(field(t[:, None], x_t) - u_t))
        optimizer.apply(tape.gradient(loss, field.trainable_variables),
                        field.trainable_variables)
        return loss

    for k in range(TRAIN_STEPS):
        step(tf.constant(k, tf.int64))


def _distribution(field) -> tfd.Distribution:
    flow = FFJORD(field, trace="exact", method="dopri5", rtol=1e-5, atol=1e-5)
    return tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc=tf.zeros(2)), flow)


def _mean_log_density_error(field) -> float:
    x = tf.constant(TARGET.sample(500, seed=tf.constant([7, 7])).numpy())   # held out
    return float(np.mean(np.abs(_distribution(field).log_prob(x).numpy()
                                - TARGET.log_prob(x).numpy())))


@pytest.fixture(scope="module")
def trained_field() -> DenseVectorField:
    field = _new_field()
    _train(field)
    return field


def test_flow_matching_learns_the_true_log_density(trained_field):
    assert _mean_log_density_error(trained_field) < LOG_DENSITY_TOL


def test_untrained_and_zero_fields_fail_the_log_density_check():
    assert _mean_log_density_error(_new_field()) > 3 * LOG_DENSITY_TOL
    zero = lambda t, z: tf.zeros_like(z)        # the flow is the base N(0, I)
    assert _mean_log_density_error(zero) > 3 * LOG_DENSITY_TOL


def test_trained_flow_samples_have_the_target_moments(trained_field):
    z = tf.random.stateless_normal([2000, 2], seed=[8, 8])
    x = _distribution(trained_field).bijector.forward(z).numpy()
    np.testing.assert_allclose(x.mean(0), MU, atol=0.06)
    np.testing.assert_allclose(x.std(0), SCALE, atol=0.05)


def test_trained_cnf_density_integrates_to_one_and_needs_its_log_det(trained_field):
    # Midpoint rule on a box holding all but ~1e-6 of the target's mass.
    h = 0.1
    xs = np.arange(MU[0] - 6 * SCALE[0], MU[0] + 6 * SCALE[0], h) + h / 2
    ys = np.arange(MU[1] - 6 * SCALE[1], MU[1] + 6 * SCALE[1], h) + h / 2
    grid = tf.constant(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2), tf.float32)
    dist = _distribution(trained_field)
    assert float(np.sum(np.exp(dist.log_prob(grid).numpy())) * h * h) == pytest.approx(1.0,
                                                                                        abs=0.01)
    # Without the log-det (or with its sign flipped) the mass is far from 1 (det ≈ 0.35).
    fresh = tf.identity(grid)
    z = dist.bijector.inverse(fresh)
    base = dist.distribution.log_prob(z).numpy()
    log_det = dist.bijector.inverse_log_det_jacobian(fresh, event_ndims=1).numpy()
    assert np.sum(np.exp(base)) * h * h < 0.5
    assert np.sum(np.exp(base - log_det)) * h * h < 0.5
