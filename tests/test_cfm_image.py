"""CFMImageFlow and its UNetVectorField on tiny images: construction errors,
serialization round trips, the EMA update, deterministic and loss-lowering training,
log_prob against a hand computation with an autodiff Jacobian, sampling, and clear
errors on badly scaled or malformed pixel batches."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.flows.flow_matching import sinkhorn_pairing
from ode_zoo.layers.unet import UNetVectorField
from ode_zoo.models.cfm_image import CFMImageFlow
from synthetic_images import quadrant_images

TINY_UNET = dict(channels=4, channel_multipliers=(1, 2), groups=2)
TINY = dict(image_shape=(4, 4, 1), **TINY_UNET, eval_solver={"method": "rk4", "num_steps": 2})


def _randomize(layer: keras.layers.Layer, seed: int = 0, scale: float = 0.3) -> None:
    """Random N(0, scale²) weights everywhere (also the zero-initialized head)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([scale * rng.normal(size=w.shape).astype(np.float32)
                       for w in layer.get_weights()])


def _suffix(variable) -> str:
    return variable.path.split("/", 1)[1]


# --- UNetVectorField ------------------------------------------------------------------------

def _unet(image_shape=(8, 8, 1), **kwargs) -> UNetVectorField:
    field = UNetVectorField(image_shape, **{**TINY_UNET, **kwargs})
    field.build((), (None, int(np.prod(image_shape))))
    return field


@pytest.mark.parametrize("image_shape, multipliers", [((8, 8, 1), (1, 2)), ((8, 4, 3), (1, 2, 2)),
                                                      ((2, 2, 1), (1,))])
def test_unet_output_has_the_input_shape_and_a_new_field_is_zero(image_shape, multipliers):
    field = _unet(image_shape, channel_multipliers=multipliers, res_blocks=2)
    y = tf.random.stateless_normal((3, int(np.prod(image_shape))), seed=[0, 1])
    out = field(tf.constant(0.3), y)
    assert out.shape == y.shape and out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), 0.0)
    _randomize(field)
    assert np.abs(field(tf.constant(0.3), y).numpy()).max() > 1e-3


def test_unet_examples_are_independent_and_times_are_per_example():
    field = _unet()
    _randomize(field, seed=1)
    y = tf.random.stateless_normal((4, 64), seed=[1, 2])
    t = tf.constant([0.1, 0.4, 0.6, 0.9])
    out = field(t, y).numpy()
    changed = field(t, tf.tensor_scatter_nd_update(y, [[0]], 3.0 + y[:1])).numpy()
    assert not np.allclose(changed[0], out[0], atol=1e-3)
    np.testing.assert_allclose(changed[1:], out[1:], atol=1e-5)
    later = field(tf.constant([0.95, 0.4, 0.6, 0.9]), y).numpy()     # only t[0] changes
    assert not np.allclose(later[0], out[0], atol=1e-3)
    np.testing.assert_allclose(later[1:], out[1:], atol=1e-5)
    # One example alone gives the same output as within the batch.
    np.testing.assert_allclose(field(t[2:3], y[2:3]).numpy(), out[2:3], atol=1e-5)


def test_unet_scalar_time_equals_the_same_time_per_example():
    field = _unet()
    _randomize(field, seed=2)
    y = tf.random.stateless_normal((3, 64), seed=[2, 3])
    np.testing.assert_allclose(field(tf.constant(0.7), y), field(tf.fill([3], 0.7), y),
                               atol=1e-6)
    assert not np.allclose(field(tf.constant(0.7), y), field(tf.constant(0.2), y), atol=1e-3)


def test_unet_config_round_trip_gives_the_same_field():
    field = _unet(res_blocks=2, time_features=16)
    _randomize(field, seed=3)
    data = keras.saving.serialize_keras_object(field)
    clone = keras.saving.deserialize_keras_object(data)
    assert isinstance(clone, UNetVectorField)
    assert clone.get_config() == field.get_config()
    assert clone.get_config()["res_blocks"] == 2 and clone.get_config()["time_features"] == 16
    if not clone.built:
        clone.build((), (None, 64))
    clone.set_weights(field.get_weights())
    y = tf.random.stateless_normal((2, 64), seed=[3, 4])
    np.testing.assert_allclose(clone(tf.constant(0.5), y), field(tf.constant(0.5), y), atol=1e-6)


def test_unet_refuses_sizes_it_cannot_halve_and_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="divisible"):
        UNetVectorField((6, 6, 1), channels=4, channel_multipliers=(1, 2, 2), groups=2)
    with pytest.raises(ValueError, match="divisible"):
        UNetVectorField((8, 5, 1), channels=4, channel_multipliers=(1, 2), groups=2)
    with pytest.raises(ValueError, match="groups"):
        UNetVectorField((8, 8, 1), channels=6, channel_multipliers=(1, 2), groups=4)
    UNetVectorField((6, 6, 1), channels=4, channel_multipliers=(1, 2), groups=2)   # 6 halves once


# --- construction and serialization ---------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(path="diffusion"), "path must be one of"),
    (dict(coupling="hungarian"), "coupling must be one of"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(ema_decay=-0.1), "ema_decay"),
    (dict(sigma_min=-1e-3), "sigma_min"),
    (dict(image_shape=(4, 4)), "image_shape"),
])
def test_constructor_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CFMImageFlow(**{**TINY, **kwargs})


def test_only_the_field_is_trainable_and_the_ema_starts_equal_to_it():
    model = CFMImageFlow(**TINY)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in
                                                          model.field.trainable_variables}
    assert not model.ema_field.trainable_variables
    assert len(model.ema_field.weights) == len(model.field.weights) > 0
    for average, weight in zip(model.ema_field.weights, model.field.weights):
        assert _suffix(average) == _suffix(weight)
        np.testing.assert_array_equal(average.numpy(), weight.numpy())


def test_config_and_weights_round_trip(tmp_path):
    model = CFMImageFlow(**{**TINY, "path": "independent", "coupling": "independent",
                            "sigma_min": 0.05, "ema_decay": 0.9, "seed": 7, "eval_seed": 3,
                            "ot_iterations": 20})
    _randomize(model.field, seed=4)
    _randomize(model.ema_field, seed=5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(clone, CFMImageFlow)
    assert clone.get_config() == model.get_config()
    config = clone.get_config()
    assert (config["path"], config["coupling"], config["seed"],
            config["eval_solver"]["num_steps"]) == ("independent", "independent", 7, 2)
    images = quadrant_images(2)
    assert not np.allclose(clone.log_prob(images), model.log_prob(images), atol=1e-3)
    model.save_weights(tmp_path / "cfm.weights.h5")
    clone.load_weights(tmp_path / "cfm.weights.h5")
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(clone.log_prob(images), model.log_prob(images), rtol=1e-6)


# --- the flow-matching loss and training --------------------------------------------------

TRAIN = dict(TINY, channel_multipliers=(1,))           # one resolution: quicker to trace


def _compiled(**kwargs) -> CFMImageFlow:
    model = CFMImageFlow(**{**TRAIN, **kwargs})
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    return model


@pytest.mark.parametrize("path, coupling", [("ot", "sinkhorn"), ("independent", "independent"),
                                            ("independent", "sinkhorn")])
def test_flow_matching_loss_regresses_the_field_on_the_documented_draws(path, coupling):
    # Rebuild every draw from the documented seeds: dequantized data y1 at t = 1, noise y0
    # at t = 0, the Sinkhorn partner of each y0, the times, the path; a field that records
    # what it is given.
    model = CFMImageFlow(**{**TINY, "path": path, "coupling": coupling, "sigma_min": 0.1,
                            "ot_iterations": 30})
    images = tf.constant(quadrant_images(6))
    seed = tf.constant([4, 2], tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 5)
    noise = tf.random.stateless_uniform(images.shape, seeds[0]).numpy()
    y1 = (2.0 * (images.numpy() + noise) / 256.0 - 1.0).reshape(6, 16)
    y0 = tf.random.stateless_normal([6, 16], seeds[1]).numpy()
    if coupling == "sinkhorn":
        y1 = y1[sinkhorn_pairing(tf.constant(y0), tf.constant(y1), 0.01, 30,
                                 seed=seeds[2]).numpy()]
    t = tf.random.stateless_uniform([6], seeds[3]).numpy()[:, None]
    if path == "ot":
        y_t, target = (1 - 0.9 * t) * y0 + t * y1, y1 - 0.9 * y0
    else:
        eps = tf.random.stateless_normal([6, 16], seeds[4]).numpy()
        y_t, target = (1 - t) * y0 + t * y1 + 0.1 * eps, y1 - y0
    seen = {}

    def field(time, y):
        seen.update(t=time.numpy(), y=y.numpy())
        return 0.5 * y + time[:, None]

    loss = float(model.flow_matching_loss(images, field, seed))
    np.testing.assert_allclose(seen["t"], t[:, 0], atol=1e-6)
    np.testing.assert_allclose(seen["y"], y_t, atol=1e-5)
    np.testing.assert_allclose(loss, np.mean((0.5 * y_t + t - target) ** 2), rtol=1e-5)
    # The new (zero) U-Net field's loss is the mean squared target velocity.
    np.testing.assert_allclose(float(model.flow_matching_loss(images, model.field, seed)),
                               np.mean(target ** 2), rtol=1e-5)
    # Another seed, other draws.
    assert float(model.flow_matching_loss(images, field, seed + 1)) != pytest.approx(loss)


def test_train_step_moves_the_ema_by_one_minus_decay_and_replays_exactly():
    model = _compiled(ema_decay=0.9, seed=3)
    _randomize(model.field, seed=9, scale=0.2)      # every weight gets a gradient
    model.ema_field.set_weights(model.field.get_weights())
    model.optimizer.build(model.field.trainable_variables)
    images = quadrant_images(8)
    state = [v.numpy() for v in model.weights + model.optimizer.variables]

    def restore():
        for v, value in zip(model.weights + model.optimizer.variables, state):
            v.assign(value)

    before = [w.numpy() for w in model.field.weights]
    loss = model.train_on_batch(images, return_dict=True)["loss"]
    assert np.isfinite(loss) and loss > 0
    after = [w.numpy() for w in model.field.weights]
    assert sum(not np.allclose(a, b) for a, b in zip(after, before)) > 0.9 * len(before)
    for average, old, new in zip(model.ema_field.weights, before, after):
        # EMA_1 = 0.9 EMA_0 + 0.1 w_1 with EMA_0 = w_0.
        np.testing.assert_allclose(average.numpy(), 0.9 * old + 0.1 * new, atol=1e-6)
    # The same state, seed and iteration: the same step.
    restore()
    assert model.train_on_batch(images, return_dict=True)["loss"] == loss
    for w, expected in zip(model.field.weights, after):
        np.testing.assert_array_equal(w.numpy(), expected)
    # The next iteration draws anew: the same batch gives another loss.
    model.field.set_weights(before)
    assert model.train_on_batch(images, return_dict=True)["loss"] != loss


@pytest.fixture(scope="module")
def trained():
    """A tiny OT-CFM model after 40 steps on 32 synthetic images, its fixed-seed losses
    before (`start`) and the images."""
    model = _compiled(ema_decay=0.5)
    images = tf.constant(quadrant_images(32, seed=1))
    seed = tf.constant([9, 9], tf.int64)
    start = float(model.flow_matching_loss(images, model.field, seed))
    for step in range(40):
        model.train_on_batch(images[16 * (step % 2):16 * (step % 2 + 1)])
    return model, images, seed, start


def test_loss_decreases_over_a_few_dozen_steps(trained):
    model, images, seed, start = trained
    # Measured: about 0.55 of the start with the field, a little more with the EMA.
    assert float(model.flow_matching_loss(images, model.field, seed)) < 0.75 * start
    assert float(model.flow_matching_loss(images, model.ema_field, seed)) < 0.85 * start


def test_a_scaled_batch_is_refused_by_fit(trained):
    model = trained[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiply by 255"):
        model.train_on_batch((GOOD[:1].repeat(16, 0) / 255.0).astype(np.float32))


def test_evaluate_reports_loss_bits_per_dim_and_nfe(trained):
    model = trained[0]
    results = model.evaluate(quadrant_images(4), batch_size=4, verbose=0, return_dict=True)
    assert set(results) == {"loss", "bits_per_dim", "nfe"}
    assert all(np.isfinite(v) for v in results.values())
    assert results["nfe"] == 8                           # 2 RK4 steps of 4 stages


# --- log_prob, bits/dim and sampling --------------------------------------------------------

def test_log_prob_of_raw_pixels_is_finite_per_image_and_bits_per_dim_matches():
    model = CFMImageFlow(**TINY)
    _randomize(model.ema_field, seed=6, scale=0.1)
    images = quadrant_images(3)
    log_prob = model.log_prob(images)
    assert log_prob.shape == (3,) and np.all(np.isfinite(log_prob))
    np.testing.assert_allclose(model(images), log_prob, rtol=1e-6)
    np.testing.assert_allclose(model.bits_per_dim(images), -log_prob / (16 * math.log(2.0)),
                               rtol=1e-6)


def _rk4_three_eighths(field, y, steps):
    """Kutta's 3/8-rule RK4 (the solver's "rk4") of dy/dt = field(t, y) from t = 1 to 0."""
    h, t = -1.0 / steps, 1.0
    for _ in range(steps):
        k1 = field(tf.constant(t), y)
        k2 = field(tf.constant(t + h / 3), y + h * k1 / 3)
        k3 = field(tf.constant(t + 2 * h / 3), y + h * (k2 - k1 / 3))
        k4 = field(tf.constant(t + h), y + h * (k1 - k2 + k3))
        y, t = y + h * (k1 + 3 * k2 + 3 * k3 + k4) / 8, t + h
    return y


def test_log_prob_equals_the_change_of_variables_by_hand():
    # log P(x) = log N(z) + log|det ∂z/∂y| + D·log(2/256), with y = 2(x + v)/256 − 1 for the
    # documented noise v, z the field's solve from t = 1 back to 0 (here a hand-written RK4)
    # and the log-det from a central-difference Jacobian of that map — no trace integral.
    steps = 8
    model = CFMImageFlow(image_shape=(2, 2, 1), channels=4, channel_multipliers=(1,), groups=2,
                         trace="exact", eval_seed=5,
                         eval_solver={"method": "rk4", "num_steps": steps})
    _randomize(model.ema_field, seed=7, scale=0.2)
    x = np.array([[[[10.0], [100.0]], [[200.0], [127.0]]],
                  [[[0.0], [255.0]], [[64.0], [3.0]]]], np.float32)
    noise = tf.random.stateless_uniform(x.shape, [5, 0]).numpy()
    y = (2.0 * (x + noise) / 256.0 - 1.0).reshape(2, 4)
    h = 1e-2
    shifted = y[:, None] + h * np.eye(4)[None]                          # [2, 4 (k), 4]
    batch = np.concatenate([y, shifted.reshape(-1, 4),
                            (shifted - 2 * h * np.eye(4)).reshape(-1, 4)])
    out = _rk4_three_eighths(model.ema_field, tf.constant(batch, tf.float32), steps).numpy()
    out = out.astype(np.float64)
    z, plus, minus = out[:2], out[2:10].reshape(2, 4, 4), out[10:].reshape(2, 4, 4)
    log_det = np.linalg.slogdet((plus - minus) / (2 * h))[1]
    assert np.all(np.abs(log_det) > 0.05)                  # not a volume-preserving flow
    by_hand = (np.sum(-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi), 1) + log_det
               + 4 * np.log(2.0 / 256.0))
    # Measured agreement: 4e-5 (the trace integral vs the discrete map's log-det).
    np.testing.assert_allclose(model.log_prob(x).numpy(), by_hand, atol=5e-4)


def test_sample_of_the_zero_field_quantizes_base_noise():
    model = CFMImageFlow(**TINY)                   # a new field is zero: y = z
    pixels = np.array([0, 1, 17, 100, 127, 128, 200, 254, 255, 3, 64, 90, 180, 220, 33, 5.0])
    z = np.stack([-1.0 + 2.0 * (pixels + 0.5) / 256.0,            # mid-bin: pixel back
                  np.where(np.arange(16) % 2, 10.0, -10.0)])        # far out: clipped
    samples = model.sample(tf.constant(z, tf.float32)).numpy()
    assert samples.shape == (2, 4, 4, 1) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples[0].ravel(), pixels)
    np.testing.assert_array_equal(samples[1].ravel(), np.where(np.arange(16) % 2, 255.0, 0.0))


def test_logit_space_flow_of_the_zero_field_by_hand():
    # A new field is zero, so z = y = logit(α + (1 − 2α)·u) with u = (x + v)/256:
    # log P(x) = log N(y) + Σ [log(1 − 2α) − log s − log(1 − s)] − D·log 256.
    alpha = 1e-6
    model = CFMImageFlow(**TINY, eval_seed=3, logit_alpha=alpha)
    x = np.arange(0, 256, 16, dtype=np.float32).reshape(1, 4, 4, 1)
    u = ((x + tf.random.stateless_uniform(x.shape, [3, 0]).numpy()) / 256.0).astype(np.float64)
    s = alpha + (1 - 2 * alpha) * u.reshape(1, 16)
    y = np.log(s) - np.log1p(-s)
    by_hand = (np.sum(-0.5 * y ** 2 - 0.5 * np.log(2 * np.pi), 1)
               + np.sum(np.log(1 - 2 * alpha) - np.log(s) - np.log1p(-s), 1) - 16 * np.log(256.0))
    np.testing.assert_allclose(model.log_prob(x).numpy(), by_hand, rtol=1e-5)
    mid_bin = np.log((x.ravel() + 0.5) / 256.0) - np.log1p(-(x.ravel() + 0.5) / 256.0)
    np.testing.assert_array_equal(model.sample(tf.constant(mid_bin[None], tf.float32)).numpy(), x)
    assert CFMImageFlow.from_config(model.get_config()).logit_alpha == alpha
    with pytest.raises(ValueError, match="alpha"):
        CFMImageFlow(**TINY, logit_alpha=0.5)


def test_sample_of_a_random_field_is_whole_pixels_in_range():
    model = CFMImageFlow(**TINY)
    _randomize(model.ema_field, seed=8)
    samples = model.sample(tf.random.stateless_normal((5, 16), seed=[4, 4])).numpy()
    assert samples.shape == (5, 4, 4, 1)
    np.testing.assert_array_equal(samples, np.floor(samples))
    assert samples.min() >= 0 and samples.max() <= 255 and len(np.unique(samples)) > 5
    with pytest.raises(TypeError, match="float32"):
        model.sample(tf.zeros((2, 16), tf.int32))
    with pytest.raises(ValueError, match=r"\[N, 16\]"):
        model.sample(tf.zeros((2, 4, 4, 1)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model.sample(tf.fill((2, 16), np.nan))


# --- input checks ---------------------------------------------------------------------------

GOOD = quadrant_images(2)
BAD_VALUES = [
    pytest.param(GOOD / 255.0, "multiply by 255", id="scaled_to_unit"),
    pytest.param(np.where(np.arange(16).reshape(1, 4, 4, 1) == 3, np.nan, GOOD), "NaN",
                 id="nan"),
    pytest.param(GOOD + 0.5, "fraction", id="fractional"),
    pytest.param(GOOD * 2.0, "0–255|values in", id="above_255"),
]


@pytest.mark.parametrize("images, match", BAD_VALUES)
def test_bad_pixel_values_are_refused_eagerly(images, match):
    model = CFMImageFlow(**TINY)
    with pytest.raises(ValueError, match=match):
        model.log_prob(images.astype(np.float32))


@pytest.fixture(scope="module")
def traced_log_prob():
    model = CFMImageFlow(**TINY)
    return tf.function(model.log_prob, input_signature=[tf.TensorSpec([None, 4, 4, 1])])


@pytest.mark.parametrize("images, match", BAD_VALUES)
def test_bad_pixel_values_are_refused_inside_tf_function(traced_log_prob, images, match):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="NaN|0–255|scaled to \\[0, 1\\]|fractions"):
        traced_log_prob(tf.constant(images, tf.float32))
    assert traced_log_prob(tf.constant(GOOD)).shape == (2,)


def test_wrong_shapes_and_dtypes_are_refused():
    model = CFMImageFlow(**TINY)
    with pytest.raises(ValueError, match=r"shape \[N, 4, 4, 1\]"):
        model.log_prob(np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match=r"shape \[N, 4, 4, 1\]"):
        model.log_prob(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        model.log_prob(GOOD.astype(np.int32))
    with pytest.raises(ValueError, match=r"shape \[N, 4, 4, 1\]"):
        tf.function(model.log_prob)(tf.zeros((2, 8, 8, 1)))
