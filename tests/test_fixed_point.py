"""`fixed_point` finds z* = f(z*) per batch element with Broyden, Anderson and
Picard: known fixed points, per-sample stopping, evaluation counts, failure
without hanging, degenerate Anderson histories, execution modes, argument checks."""
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.equilibrium import METHODS, Broyden, fixed_point
from ode_zoo.equilibrium.broyden import apply

ALL_METHODS = sorted(METHODS)
DOTTIE = 0.7390851332151607  # the fixed point of cos


def _linear_problem(dtype, batch=3, n=4, norm=0.6, seed=0):
    """f(z) = A z + b with a different A (‖A‖₂ = norm) per batch element, and z* = (I − A)⁻¹ b."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, n, n))
    a *= norm / np.linalg.norm(a, 2, axis=(1, 2))[:, None, None]
    b = rng.standard_normal((batch, n))
    exact = np.linalg.solve(np.eye(n) - a, b[:, :, None])[:, :, 0]
    a_t, b_t = tf.constant(a, dtype), tf.constant(b, dtype)
    return (lambda z: tf.einsum("bij,bj->bi", a_t, z) + b_t), a, b, exact


def _tanh_cell(dtype, batch=4, n=32, seed=0):
    """A DEQ-like cell f(z) = tanh(W z + U x), W symmetric with eigenvalues in [−0.9, 0.9]."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    w = tf.constant(q @ np.diag(np.linspace(-0.9, 0.9, n)) @ q.T, dtype)
    ux = tf.constant(0.5 * rng.standard_normal((batch, n)), dtype)
    return lambda z: tf.tanh(tf.matmul(z, w, transpose_b=True) + ux)


def _slow_tanh_cell(radius, n, batch=64, seed=0):
    """f(z) = tanh(z Wᵀ + x Uᵀ) (float32), W standard normal scaled to spectral radius
    `radius` (non-normal: ‖W‖₂ is about twice that), small inputs x ~ N(0, 0.1²): the
    Picard iteration contracts at about `radius` near the fixed point."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, n))
    w *= radius / np.abs(np.linalg.eigvals(w)).max()
    injection = 0.1 * rng.standard_normal((batch, n)) @ rng.standard_normal((n, n)).T / n ** 0.5
    w_t, injection = tf.constant(w.T, tf.float32), tf.constant(injection, tf.float32)
    return lambda z: tf.tanh(tf.matmul(z, w_t) + injection)


@pytest.mark.parametrize("radius, n, seed", [(0.95, 64, 1), (0.99, 32, 1), (0.99, 64, 1)])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_sample_of_a_slow_contraction_converges_with_default_options(method, radius, n,
                                                                           seed):
    # Before restarts, limited-memory Broyden left 17, 5 and 35 of these 64 samples
    # unconverged, each stopped after 109-139 steps (its H blew up to a non-finite step).
    f = _slow_tanh_cell(radius, n, seed=seed)
    max_iter = 1000 if method == "picard" else 300    # Picard contracts at `radius`: slowly
    result = tf.function(lambda: fixed_point(f, tf.zeros([64, n]), method=method, tol=1e-4,
                                             max_iter=max_iter))()
    assert result.converged.numpy().all(), (~result.converged.numpy()).sum()
    np.testing.assert_array_less(result.rel_residual.numpy(), 1e-4 * (1 + 1e-6))
    if method != "picard":
        # Measured: anderson 71, 78, 108; broyden 75, 57, 90 evaluations (picard 129, >300).
        assert int(result.num_evaluations) <= 150


@pytest.mark.parametrize("dtype, tol", [(tf.float32, 1e-5), (tf.float64, 1e-10)])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_linear_contraction_reaches_the_exact_fixed_point(method, dtype, tol):
    f, a, b, exact = _linear_problem(dtype)
    result = fixed_point(f, tf.zeros([3, 4], dtype), method=method, tol=tol, max_iter=200,
                         stop_mode="abs")
    z = result.z.numpy()
    assert result.z.dtype == dtype and result.abs_residual.dtype == dtype
    assert result.converged.numpy().all()
    # ‖z − z*‖ <= ‖(I − A)⁻¹‖ ‖f(z) − z‖ <= residual / (1 − 0.6).
    np.testing.assert_array_less(np.linalg.norm(z - exact, axis=1), tol / 0.4 * 1.01)
    residual = np.einsum("bij,bj->bi", a, z) + b - z
    np.testing.assert_allclose(result.abs_residual.numpy(), np.linalg.norm(residual, axis=1),
                               rtol=1e-3 if dtype == tf.float32 else 1e-6, atol=1e-7)
    np.testing.assert_array_less(result.abs_residual.numpy(), tol)
    assert int(result.num_evaluations) == result.num_steps.numpy().max() + 1


@pytest.mark.parametrize("method", ALL_METHODS)
def test_cos_fixed_point_elementwise_on_a_multi_axis_state(method):
    result = fixed_point(tf.cos, tf.zeros([2, 3, 2], tf.float64), method=method, tol=1e-9,
                         max_iter=100)
    assert result.z.shape == (2, 3, 2)
    np.testing.assert_allclose(result.z.numpy(), DOTTIE, atol=1e-8)
    np.testing.assert_allclose(result.rel_residual.numpy(),
                               result.abs_residual.numpy() / np.linalg.norm(
                                   np.cos(result.z.numpy()).reshape(2, -1), axis=1), rtol=1e-6)
    assert result.converged.numpy().all()


@pytest.mark.parametrize("method", ALL_METHODS)
def test_each_sample_stops_on_its_own(method):
    # Sample 0 is a strong contraction (easy), sample 1 a weak one (hard).
    rate = tf.constant([[0.1], [0.95]], tf.float64)
    x = tf.constant([[0.3, -0.2, 0.1], [0.3, -0.2, 0.1]], tf.float64)

    def f(z):
        return rate * tf.tanh(z) + x

    inputs = []

    def recording_f(z):   # eager: called once per iteration with the iterate
        inputs.append(z.numpy())
        return f(z)

    kwargs = dict(method=method, tol=1e-8, max_iter=300)
    both = fixed_point(recording_f, tf.zeros([2, 3], tf.float64), **kwargs)
    alone = fixed_point(lambda z: rate[:1] * tf.tanh(z) + x[:1], tf.zeros([1, 3], tf.float64),
                        **kwargs)
    steps = both.num_steps.numpy()
    assert both.converged.numpy().all()
    assert steps[0] < steps[1]
    assert int(both.num_evaluations) == steps[1] + 1
    # The easy sample was frozen when it converged: same steps and iterate as alone.
    assert steps[0] == int(alone.num_steps[0])
    np.testing.assert_allclose(both.z.numpy()[0], alone.z.numpy()[0], rtol=0, atol=1e-14)
    assert len(inputs) == steps[1] + 1
    for later in inputs[steps[0]:]:
        np.testing.assert_array_equal(later[0], both.z.numpy()[0])


def test_broyden_and_anderson_need_fewer_evaluations_than_picard_on_a_tanh_cell():
    f = _tanh_cell(tf.float64)
    evaluations = {}
    for method in ALL_METHODS:
        result = fixed_point(f, tf.zeros([4, 32], tf.float64), method=method, tol=1e-6,
                             max_iter=300)
        assert result.converged.numpy().all(), method
        np.testing.assert_allclose(result.z.numpy(), f(result.z).numpy(), atol=1e-5)
        evaluations[method] = int(result.num_evaluations)
    # Measured: picard 58, anderson 20, broyden 19 (at tol=1e-3: 25, 10, 10).
    assert evaluations["broyden"] < 0.6 * evaluations["picard"], evaluations
    assert evaluations["anderson"] < 0.6 * evaluations["picard"], evaluations


def test_damped_picard_converges_where_the_plain_iteration_oscillates_away():
    def f(z):
        return 1.0 - 1.5 * z   # slope −1.5; with α = 0.5 the map is z ↦ 0.5 − 0.25 z

    z0 = tf.zeros([2, 2], tf.float64)
    damped = fixed_point(f, z0, method="picard", damping=0.5, tol=1e-10, max_iter=40)
    np.testing.assert_allclose(damped.z.numpy(), 0.4, atol=1e-9)
    assert damped.converged.numpy().all()
    assert not fixed_point(f, z0, method="picard", max_iter=40).converged.numpy().any()


def test_anderson_first_step_is_the_damped_picard_step():
    f = _tanh_cell(tf.float64, batch=2, n=8)
    z0 = tf.zeros([2, 8], tf.float64)
    one_step = fixed_point(f, z0, method="anderson", damping=0.3, max_iter=1)
    np.testing.assert_allclose(one_step.z.numpy(), 0.3 * f(z0).numpy(), rtol=1e-12)


@pytest.mark.parametrize("method", ["anderson", "broyden"])
def test_a_short_memory_ring_buffer_still_converges(method):
    f = _tanh_cell(tf.float64)
    result = fixed_point(f, tf.zeros([4, 32], tf.float64), method=method, memory=2, tol=1e-8,
                         max_iter=200)
    assert result.converged.numpy().all()
    np.testing.assert_allclose(result.z.numpy(), f(result.z).numpy(), atol=1e-7)


def test_broyden_keeps_the_secant_condition_when_its_memory_is_full():
    # After each update H Δg = Δz, and the carried direction is H g at the new iterate.
    f, broyden = _tanh_cell(tf.float64, batch=2, n=8), Broyden(memory=2)
    z = tf.zeros([2, 8], tf.float64)
    fz = f(z)
    state = broyden.init(z, fz)
    keep = tf.zeros([2], tf.bool)
    for _ in range(5):
        z_new = broyden.propose(z, fz, state)
        fz_new = f(z_new)
        state = broyden.update(state, z, fz, z_new, fz_new, keep)
        weights = broyden.weights(state)
        np.testing.assert_allclose(
            apply(state.u, state.v, weights, (fz_new - z_new) - (fz - z)).numpy(),
            (z_new - z).numpy(), atol=1e-12)
        np.testing.assert_allclose(state.direction.numpy(),
                                   apply(state.u, state.v, weights, fz_new - z_new).numpy(),
                                   atol=1e-12)
        z, fz = z_new, fz_new
    np.testing.assert_array_equal(weights.numpy(), [[1, 1], [1, 1]])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_a_map_without_fixed_point_fails_after_max_iter(method):
    # f(z) = z + 1 has no fixed point: ‖f(z) − z‖ = √n whatever z is.
    result = fixed_point(lambda z: z + 1.0, tf.zeros([2, 4]), method=method, max_iter=25,
                         stop_mode="abs")
    assert not result.converged.numpy().any()
    np.testing.assert_array_equal(result.num_steps.numpy(), [25, 25])
    assert int(result.num_evaluations) == 26
    np.testing.assert_allclose(result.abs_residual.numpy(), 2.0, rtol=1e-4)
    assert np.isfinite(result.z.numpy()).all()


def test_picard_diverges_on_a_repelling_map_where_broyden_finds_the_root():
    def f(z):
        return 2.0 * z + 1.0   # fixed point −1, repelling for the plain iteration

    picard = fixed_point(f, tf.zeros([2, 3]), method="picard", max_iter=30)
    assert not picard.converged.numpy().any()
    # Picard runs away: ‖f(z) − z‖ = |z + 1|√3 grows like 2^k, ‖f(z) − z‖ / ‖f(z)‖ tends to 1/2.
    assert (picard.abs_residual.numpy() > 1e6).all()
    np.testing.assert_allclose(picard.rel_residual.numpy(), 0.5, rtol=1e-3)
    broyden = fixed_point(f, tf.zeros([2, 3]), method="broyden", tol=1e-6, max_iter=30)
    assert broyden.converged.numpy().all()
    np.testing.assert_allclose(broyden.z.numpy(), -1.0, atol=1e-5)


def test_broyden_skips_secant_updates_across_a_flat_region():
    # g(z) = f(z) − z is 1 for z <= 2 (flat: Δg = 0 on the first steps), then
    # 1 − 3 (z − 2) with its root at 7/3, where f has slope −2 (repelling for Picard).
    def f(z):
        return z + tf.minimum(1.0, 1.0 - 3.0 * (z - 2.0))

    result = fixed_point(f, tf.constant([[0.0], [0.5]], tf.float64), method="broyden",
                         tol=1e-10, max_iter=20, stop_mode="abs")
    assert result.converged.numpy().all()
    np.testing.assert_allclose(result.z.numpy(), 7.0 / 3.0, rtol=1e-9)
    picard = fixed_point(f, tf.constant([[0.0]], tf.float64), method="picard", max_iter=20)
    assert not picard.converged.numpy().any()


@pytest.mark.parametrize("method", ["broyden", "anderson"])
def test_huge_residuals_stay_finite(method):
    # Residuals of 1e20 overflow float32 squares: no NaN, and (Anderson) the
    # overflowing least-squares system falls back to a Picard step, as Broyden's first step is.
    result = fixed_point(lambda z: z + 1e20, tf.zeros([2, 3]), method=method, max_iter=5)
    np.testing.assert_allclose(result.z.numpy(), 5e20, rtol=1e-5)
    np.testing.assert_allclose(result.abs_residual.numpy(), 3 ** 0.5 * 1e20, rtol=1e-5)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_a_sample_whose_f_turns_nan_stops_without_harming_the_others(method):
    # Sample 1 iterates log, which has no real fixed point: 2 → 0.69 → −0.37 → NaN.
    first = tf.constant([[True], [False]])

    def f(z):
        return tf.where(first, tf.cos(z), tf.math.log(z))

    result = fixed_point(f, tf.fill([2, 1], tf.constant(2.0, tf.float64)), method=method,
                         tol=1e-9, max_iter=60)
    np.testing.assert_array_equal(result.converged.numpy(), [True, False])
    assert int(result.num_steps[1]) == 2   # stopped at its first NaN
    assert int(result.num_evaluations) == int(result.num_steps[0]) + 1
    np.testing.assert_allclose(result.z.numpy()[0], DOTTIE, atol=1e-8)
    z1 = result.z.numpy()[1]
    assert np.isfinite(z1).all() and np.isfinite(result.abs_residual.numpy()).all()
    np.testing.assert_allclose(result.abs_residual.numpy()[1], np.abs(np.log(z1) - z1)[0])


@pytest.mark.parametrize("regularization", [0.0, 1e-4])
def test_anderson_survives_singular_histories(regularization):
    kwargs = dict(method="anderson", regularization=regularization, max_iter=12)
    constant = fixed_point(lambda z: tf.zeros_like(z) + 0.5, tf.zeros([2, 3]), tol=1e-6, **kwargs)
    np.testing.assert_allclose(constant.z.numpy(), 0.5)
    assert constant.converged.numpy().all()
    # All residuals equal: the least-squares Gram matrix has rank one.
    shift = fixed_point(lambda z: z + 1.0, tf.zeros([2, 3]), **kwargs)
    assert np.isfinite(shift.z.numpy()).all() and np.isfinite(shift.rel_residual.numpy()).all()
    # f(0) = 0: the relative residual is 0/0, reported as 0.
    zero = fixed_point(lambda z: 0.5 * z, tf.zeros([2, 3]), **kwargs)
    np.testing.assert_array_equal(zero.rel_residual.numpy(), 0.0)
    assert zero.converged.numpy().all() and int(zero.num_evaluations) == 1


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("method", ALL_METHODS)
def test_eager_graph_and_xla_agree(method, dtype):
    f = _tanh_cell(dtype, batch=3, n=8)

    def solve(z0):
        return fixed_point(f, z0, method=method, tol=1e-4, max_iter=60)

    z0 = tf.zeros([3, 8], dtype)
    eager = solve(z0)
    graph = tf.function(solve)(z0)
    xla = tf.function(solve, jit_compile=True)(z0)
    assert eager.converged.numpy().all()
    for other in (graph, xla):
        np.testing.assert_allclose(other.z.numpy(), eager.z.numpy(), atol=1e-4)
        np.testing.assert_array_equal(other.converged.numpy(), eager.converged.numpy())
        assert np.abs(other.num_steps.numpy() - eager.num_steps.numpy()).max() <= 1


def test_unknown_batch_size_in_a_traced_function():
    solve = tf.function(lambda z0: fixed_point(tf.cos, z0, tol=1e-6).z,
                        input_signature=[tf.TensorSpec([None, 2, 2], tf.float32)])
    for batch in (1, 3):
        np.testing.assert_allclose(solve(tf.zeros([batch, 2, 2])).numpy(), DOTTIE, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="newton"), r"Unknown method 'newton'; available methods are \['anderson', "
                            r"'broyden', 'picard'\]"),
    (dict(tol=0.0), "tol must be positive"),
    (dict(tol=-1e-3), "tol must be positive"),
    (dict(max_iter=0), "max_iter must be a positive integer"),
    (dict(max_iter=2.5), "max_iter must be a positive integer"),
    (dict(stop_mode="max"), "Unknown stop_mode 'max'"),
    (dict(method="picard", memory=5), "Method 'picard' takes no 'memory'"),
    (dict(method="broyden", regularization=1e-3), "Method 'broyden' takes no 'regularization'"),
    (dict(method="anderson", memory=0), "memory must be a positive integer"),
    (dict(method="anderson", damping=1.5), r"damping must be in \(0, 1\]"),
    (dict(method="anderson", regularization=-1.0), "regularization must be finite and >= 0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fixed_point(tf.cos, tf.zeros([2, 3]), **kwargs)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="z0 must be a floating-point tensor, got dtype int32"):
        fixed_point(tf.identity, tf.zeros([2, 3], tf.int32))
    with pytest.raises(ValueError, match="leading batch axis"):
        fixed_point(tf.cos, tf.constant(0.0))
    with pytest.raises(ValueError, match="f must return z's shape and dtype"):
        fixed_point(lambda z: z[:, :2], tf.zeros([2, 3]))
