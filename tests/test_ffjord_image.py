"""FFJORDImageFlow and its image transforms: bits/dim on hand-computed cases,
log-dets against autodiff Jacobians, exact inverses of squeeze / factor-out and
of the whole multiscale flow, training lowers the loss, clear errors, round trips."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.flows import FFJORD, MultiscaleFlow
from ode_zoo.flows.dequantization import bits_per_dim, quantize, uniform_dequantize
from ode_zoo.flows.logit_transform import inverse_logit_transform, logit_transform
from ode_zoo.flows.multiscale import factor_out, join_factored, scale_shapes
from ode_zoo.flows.squeeze import squeeze, unsqueeze
from ode_zoo.layers.vector_fields import FlatImageVectorField
from ode_zoo.models import FFJORDImageFlow
from synthetic_images import quadrant_images

TINY = dict(image_shape=(4, 4, 1), num_scales=2, blocks_per_scale=1, hidden_filters=(8,),
            num_steps=2, eval_solver={"method": "rk4", "num_steps": 4})
SMALLEST = dict(TINY, image_shape=(2, 2, 1), num_scales=1)


def _randomize_fields(model: FFJORDImageFlow, seed: int = 0, scale: float = 0.3) -> None:
    """Give the zero-initialized last convolutions random weights (a non-identity flow)."""
    rng = np.random.default_rng(seed)
    for field in model.fields:
        for weight in (field.convs[-1].conv.kernel, field.convs[-1].conv.bias):
            weight.assign(scale * rng.normal(size=weight.shape).astype(np.float32))


# --- dequantization, logit transform and bits/dim on hand-computed cases -------------------

def test_bits_per_dim_of_a_mid_gray_pixel_at_the_base_mode_is_computed_by_hand():
    # x = 128 with noise 0: u = 0.5, y = logit(0.5) = 0 (alpha = 0), dy/du = 1/(u(1-u)) = 4.
    # log p = log N(0; 0, 1) + log 4 - log 256 per dimension, so
    # bits/dim = 0.5·log2(2π) - 2 + 8 = 7.32575...
    u, dequantize_log_det = uniform_dequantize(tf.fill([1, 2, 2, 1], 128.0),
                                               tf.zeros([1, 2, 2, 1]))
    y, logit_log_det = logit_transform(u, alpha=0.0)
    base = -0.5 * math.log(2 * math.pi) * 4
    bpd = bits_per_dim(base + logit_log_det + dequantize_log_det, 4)
    np.testing.assert_allclose(y.numpy(), 0.0, atol=1e-7)
    np.testing.assert_allclose(bpd.numpy(), [0.5 * math.log2(2 * math.pi) + 6], rtol=1e-6)


def test_identity_model_bits_per_dim_matches_the_formula_with_the_documented_noise():
    model = FFJORDImageFlow(image_shape=(2, 2, 1), num_scales=1, blocks_per_scale=1,
                            hidden_filters=(4,), logit_alpha=0.0, eval_solver={"method": "rk4",
                            "num_steps": 1}, eval_seed=3)
    x = np.array([[[[10.0], [100.0]], [[200.0], [127.0]]]], np.float32)
    noise = tf.random.stateless_uniform(x.shape, [3, 0]).numpy().astype(np.float64)
    u = (x + noise) / 256.0
    y = np.log(u / (1 - u))
    log_p = (np.sum(-0.5 * y ** 2 - 0.5 * np.log(2 * np.pi))       # base density of y
             + np.sum(-np.log(u) - np.log(1 - u))                    # logit log-det
             - 4 * np.log(256.0))                                    # [0, 256) -> [0, 1)
    np.testing.assert_allclose(model.log_prob(x).numpy(), [log_p], rtol=1e-5)
    np.testing.assert_allclose(model.bits_per_dim(x).numpy(), [-log_p / (4 * np.log(2))],
                               rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.0, 1e-6, 0.05])
def test_logit_log_det_equals_the_log_det_of_the_autodiff_jacobian(alpha):
    u = tf.constant(np.random.default_rng(1).uniform(0.01, 0.99, size=(3, 2, 2, 1)),
                    tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(u)
        y, log_det = logit_transform(u, alpha)
        flat = tf.reshape(y, [3, 4])
    jacobian = tape.batch_jacobian(flat, u)
    _, expected = np.linalg.slogdet(tf.reshape(jacobian, [3, 4, 4]).numpy())
    np.testing.assert_allclose(log_det.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(inverse_logit_transform(y, alpha).numpy(), u.numpy(), atol=1e-12)


def test_dequantization_log_det_equals_the_log_det_of_the_autodiff_jacobian():
    v = tf.constant(np.random.default_rng(2).uniform(0, 256, size=(2, 2, 2, 1)), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(v)                                  # v = pixels + noise
        u, log_det = uniform_dequantize(v, tf.zeros_like(v))
        flat = tf.reshape(u, [2, 4])
    jacobian = tf.reshape(tape.batch_jacobian(flat, v), [2, 4, 4])
    np.testing.assert_allclose(log_det.numpy(), np.linalg.slogdet(jacobian.numpy())[1])
    np.testing.assert_allclose(log_det.numpy(), -4 * np.log(256.0))


def test_quantize_recovers_every_pixel_from_any_noise_in_0_1():
    pixels = tf.constant(np.arange(256, dtype=np.float32)[None, :].repeat(3, 0))
    noise = tf.constant([[0.0] * 256, [0.5] * 256, [0.9999] * 256])
    u, _ = uniform_dequantize(pixels, noise)
    np.testing.assert_array_equal(quantize(u).numpy(), pixels.numpy())


# --- squeeze, factor-out and the multiscale composition ------------------------------------

def test_squeeze_moves_each_2x2_patch_into_channels_and_unsqueeze_undoes_it():
    x = tf.constant(np.random.default_rng(3).normal(size=(3, 4, 6, 2)), tf.float32)
    squeezed = squeeze(x)
    assert squeezed.shape == (3, 2, 3, 8)
    patch = x[1, 2:4, 4:6, :].numpy()                  # the patch at squeezed position (1, 2)
    np.testing.assert_array_equal(np.sort(squeezed[1, 1, 2].numpy()), np.sort(patch.ravel()))
    np.testing.assert_array_equal(unsqueeze(squeezed).numpy(), x.numpy())
    np.testing.assert_array_equal(squeeze(unsqueeze(squeezed)).numpy(), squeezed.numpy())


def test_factor_out_and_join_are_exact_inverses():
    h = tf.constant(np.random.default_rng(4).normal(size=(2, 3, 3, 8)), tf.float32)
    kept, out = factor_out(h)
    assert kept.shape == out.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(join_factored(kept, out).numpy(), h.numpy())


def test_scale_shapes_halve_the_resolution_and_factor_out_half_the_channels():
    assert scale_shapes((28, 28, 1), 2) == [(14, 14, 4), (7, 7, 8)]
    assert scale_shapes((8, 8, 3), 3) == [(4, 4, 12), (2, 2, 24), (1, 1, 48)]
    with pytest.raises(ValueError, match="at most 2 scales"):
        scale_shapes((28, 28, 1), 3)


def _random_fields(dtype: str = "float32", seed: int = 0) -> list:
    """The two fields of a 2-scale flow on 4×4×1 images, with random last layers."""
    fields = [FlatImageVectorField(shape, hidden_filters=(8,), dtype=dtype)
              for shape in ((2, 2, 4), (1, 1, 8))]
    rng = np.random.default_rng(seed)
    for field, dim in zip(fields, (16, 8)):
        field.build((), (None, dim))
        for weight in field.trainable_weights:
            weight.assign(0.3 * rng.normal(size=weight.shape))
    return fields


def _multiscale(fields: list, trace: str, **solver) -> MultiscaleFlow:
    return MultiscaleFlow((4, 4, 1), [[FFJORD(field, trace=trace, **solver)] for field in fields])


def test_decode_inverts_encode_of_the_whole_multiscale_flow():
    flow = _multiscale(_random_fields(), "hutchinson_rademacher", rtol=1e-6, atol=1e-6)
    y = tf.constant(np.random.default_rng(5).normal(size=(3, 4, 4, 1)), tf.float32)
    latent, _ = flow.encode(y)
    assert latent.shape == (3, 16)
    assert float(tf.reduce_max(tf.abs(latent - tf.reshape(y, [3, 16])))) > 0.05  # not identity
    np.testing.assert_allclose(flow.decode(latent).numpy(), y.numpy(), atol=1e-4)


def test_multiscale_log_det_equals_the_log_det_of_the_finite_difference_jacobian():
    # float64, exact traces, RK4 with 8 steps: the discrete map's log-det and the
    # integrated trace differ by O(h⁴) (1e-4 at 4 steps, 7e-6 at 8, 4e-7 at 16). The
    # latent does not depend on the trace estimator, so the central differences use
    # cheap Hutchinson solves, all in one batch.
    fields = _random_fields("float64")
    y = np.random.default_rng(6).normal(size=(2, 16))
    _, log_det = _multiscale(fields, "exact", method="rk4", num_steps=8).encode(
        tf.constant(y.reshape(2, 4, 4, 1)))
    h = 1e-5
    steps = np.concatenate([np.eye(16), -np.eye(16)]) * h              # [32, 16]
    perturbed = (y[:, None, :] + steps[None]).reshape(64, 4, 4, 1)
    latent, _ = _multiscale(fields, "hutchinson_rademacher", method="rk4", num_steps=8).encode(
        tf.constant(perturbed))
    latent = latent.numpy().reshape(2, 2, 16, 16)                      # [N, ±, input, output]
    jacobian = np.swapaxes((latent[:, 0] - latent[:, 1]) / (2 * h), 1, 2)
    expected = np.linalg.slogdet(jacobian)[1]
    assert np.all(np.abs(expected) > 0.1)              # a map that changes volume
    np.testing.assert_allclose(log_det.numpy(), expected, atol=1e-5)


# --- the Keras model ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """A tiny model, its bits/dim before training and the history of 30 training steps."""
    keras.utils.set_random_seed(0)
    model = FFJORDImageFlow(**TINY)
    data = quadrant_images(64)
    before = float(tf.reduce_mean(model.bits_per_dim(data)))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(data, batch_size=32, epochs=15, verbose=0, shuffle=False)
    return model, data, before, history.history


def test_training_lowers_the_loss_and_reports_the_metrics(trained):
    model, data, before, history = trained
    assert set(history) == {"loss", "bits_per_dim", "kinetic", "jacobian", "nfe"}
    assert history["loss"][-1] < history["loss"][0] - 1.0, history["loss"]
    assert history["nfe"][0] == 8.0                    # RK4: 2 steps of 4 stages per block
    assert history["kinetic"][-1] > 0 and history["jacobian"][-1] > 0
    after = float(tf.reduce_mean(model.bits_per_dim(data)))
    assert after < before - 1.0, (before, after)


def test_log_prob_is_reproducible_and_consistent_with_bits_per_dim(trained):
    model, data, _, _ = trained
    log_prob = model.log_prob(data[:5])
    assert log_prob.shape == (5,) and log_prob.dtype == tf.float32
    np.testing.assert_array_equal(log_prob.numpy(), model.log_prob(data[:5]).numpy())
    np.testing.assert_allclose(model.bits_per_dim(data[:5]).numpy(),
                               -log_prob.numpy() / (16 * np.log(2)), rtol=1e-6)


def test_evaluate_reports_the_mean_bits_per_dim(trained):
    model, data, _, _ = trained
    result = model.evaluate(data[:32], batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["bits_per_dim"],
                               np.mean(model.bits_per_dim(data[:32])), rtol=1e-5)
    assert result["nfe"] == 16.0                       # evaluation solver: RK4, 4 steps


def test_samples_are_pixels_and_the_identity_flow_maps_zero_to_mid_gray():
    model = FFJORDImageFlow(**TINY)
    np.testing.assert_array_equal(model.sample(tf.zeros((2, 16))).numpy(), 128.0)
    _randomize_fields(model)
    samples = model.sample(tf.random.stateless_normal((8, 16), [0, 1]) * 3.0).numpy()
    assert samples.shape == (8, 4, 4, 1) and samples.dtype == np.float32
    assert samples.min() >= 0 and samples.max() <= 255
    np.testing.assert_array_equal(samples, np.floor(samples))
    assert samples.min() < 64 and samples.max() > 192      # saturated noise reaches both ends


def test_adjoint_training_reports_backward_evaluations():
    model = FFJORDImageFlow(**dict(SMALLEST, adjoint=True))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(quadrant_images(4, shape=(2, 2, 1)), return_dict=True)
    assert logs["nfe"] == 8.0 and logs["backward_nfe"] == 8.0


@pytest.mark.parametrize("images, error, match", [
    (np.zeros((2, 4, 4, 1), np.uint8), TypeError, "cast with tf.cast"),
    (np.zeros((2, 4, 4), np.float32), ValueError, r"shape \[N, 4, 4, 1\]"),
    (np.zeros((2, 5, 4, 1), np.float32), ValueError, r"shape \[N, 4, 4, 1\]"),
    (np.full((2, 4, 4, 1), np.nan, np.float32), ValueError, "NaN"),
    (np.full((2, 4, 4, 1), 0.5, np.float32), ValueError, "integers 0–255"),
    (np.full((2, 4, 4, 1), 256.0, np.float32), ValueError, "integers 0–255"),
])
def test_bad_images_raise_clear_errors(images, error, match):
    with pytest.raises(error, match=match):
        FFJORDImageFlow(**TINY).log_prob(images)


def test_bad_images_inside_a_compiled_function_fail_with_the_same_message():
    model = FFJORDImageFlow(**SMALLEST)
    with pytest.raises(tf.errors.InvalidArgumentError, match="integers 0–255"):
        tf.function(model.log_prob)(tf.fill((1, 2, 2, 1), -1.0))


def test_bad_base_noise_and_arguments_raise_clear_errors():
    model = FFJORDImageFlow(**TINY)
    with pytest.raises(ValueError, match=r"shape \[N, 16\]"):
        model.sample(tf.zeros((2, 15)))
    with pytest.raises(TypeError, match="float32"):
        model.sample(tf.zeros((2, 16), tf.int32))
    with pytest.raises(ValueError, match="at most 2 scales"):
        FFJORDImageFlow(**dict(TINY, num_scales=3))
    with pytest.raises(ValueError, match="available trace estimators"):
        FFJORDImageFlow(**dict(TINY, trace="hutchinson"))
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 0.5\)"):
        FFJORDImageFlow(**dict(TINY, logit_alpha=0.5))
    with pytest.raises(ValueError, match="blocks_per_scale"):
        FFJORDImageFlow(**dict(TINY, blocks_per_scale=0))
    with pytest.raises(ValueError, match=r"flat states \[N, 16\]"):
        FlatImageVectorField((4, 4, 1)).build((), (None, 15))


def test_config_and_keras_file_round_trip(trained, tmp_path):
    model, data, _, _ = trained
    clone = FFJORDImageFlow.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()
    path = tmp_path / "flow.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, FFJORDImageFlow)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 30
    np.testing.assert_allclose(loaded.log_prob(data[:4]).numpy(),
                               model.log_prob(data[:4]).numpy(), rtol=1e-5)
