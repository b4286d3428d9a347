"""ODE2VAE: the Bayesian acceleration field, the second-order latent flow and its
density, the loss terms against closed forms, training, prediction from the
first m frames only, input checks and saving."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.demos.sequence_plots import plot_sequence_predictions
from ode_zoo.layers.bayesian_mlp import ACTIVATIONS, BayesianMLP, mlp_with_trace
from ode_zoo.models import ODE2VAE

TINY_VECTOR = dict(data_shape=(4,), latent_dim=2, amortization_length=2, bnn_units=(8,),
                   coder_units=(8,))
TINY_IMAGE = dict(data_shape=(8, 8, 1), latent_dim=3, amortization_length=2, bnn_units=(6,),
                  encoder_filters=2, decoder_filters=2, kernel_size=3)


@pytest.fixture(autouse=True)
def _seeded_initializers():
    """The same initial weights in every run (Keras initializers draw from the global seed)."""
    keras.utils.set_random_seed(0)


def _vector_sequences(n: int = 6, frames: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, frames, 4)).astype(np.float32)


def _image_sequences(n: int = 2, frames: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, frames, 8, 8, 1)).astype(np.float32)


def _make_field_zero(model: ODE2VAE) -> None:
    """q(W) concentrated on W = 0 (variances e^-60), so f_W ≡ 0 for every draw."""
    for weight in model.acceleration.weights:
        fill = 0.0 if weight.name.endswith("mean") else -60.0
        weight.assign(tf.fill(weight.shape, fill))


def _gaussian_kl(mean0, cov0, mean1, cov1) -> float:
    """KL(N(mean0, cov0) ‖ N(mean1, cov1)), closed form."""
    inverse = np.linalg.inv(cov1)
    diff = mean1 - mean0
    return 0.5 * (np.trace(inverse @ cov0) + diff @ inverse @ diff - len(mean0)
                  + np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1])


def _encoder_gaussian(encoder: keras.Model, inputs: np.ndarray):
    mean, log_variance = np.split(encoder(inputs).numpy()[0].astype(np.float64), 2)
    return mean, np.exp(log_variance)


# --- the Bayesian neural network ------------------------------------------------------

def test_bnn_kl_is_the_gaussian_closed_form():
    mlp = BayesianMLP(input_dim=3, output_dim=2, hidden_units=(4,))
    rng = np.random.default_rng(0)
    for weight in mlp.weights:
        weight.assign(rng.normal(size=weight.shape) * (2.0 if "log_variance" in weight.name
                                                       else 1.0))
    means = [w.numpy() for w in mlp.weights if w.name.endswith("mean")]
    variances = [np.exp(w.numpy()) for w in mlp.weights if w.name.endswith("log_variance")]
    expected = sum(np.sum(0.5 * (v + m ** 2 - 1 - np.log(v))) for m, v in zip(means, variances))
    assert float(mlp.kl_divergence()) == pytest.approx(expected, rel=1e-5)
    assert mlp.num_weights == 3 * 4 + 4 + 4 * 2 + 2 == sum(m.size for m in means)


def test_bnn_draws_are_reparameterized_gaussians_around_the_means():
    mlp = BayesianMLP(input_dim=2, output_dim=1, hidden_units=(), initial_variance=0.25)
    kernel, bias = mlp.sample_weights(num_samples=20000, seed=tf.constant([3, 4]))[0]
    mean = mlp.weights[0].numpy()
    assert kernel.shape == (20000, 2, 1) and bias.shape == (20000, 1)
    np.testing.assert_allclose(kernel.numpy().mean(0), mean, atol=0.02)
    np.testing.assert_allclose(kernel.numpy().std(0), 0.5, atol=0.02)
    with tf.GradientTape() as tape:
        draws = mlp.sample_weights(4, tf.constant([0, 1]))
        total = tf.add_n([tf.reduce_sum(k) + tf.reduce_sum(b) for k, b in draws])
    assert all(g is not None for g in tape.gradient(total, mlp.trainable_weights))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_trace_of_the_velocity_jacobian_matches_autodiff(activation):
    mlp = BayesianMLP(input_dim=6, output_dim=3, hidden_units=(7, 5), activation=activation)
    weights = mlp.sample_weights(2, tf.constant([1, 2]))
    z = tf.random.stateless_normal((2, 4, 6), seed=[0, 0])
    outputs, trace = mlp_with_trace(weights, z, activation, trace_start=3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        again, _ = mlp_with_trace(weights, z, activation)
        columns = [again[..., j] for j in range(3)]
    expected = sum(tape.gradient(columns[j], z)[..., 3 + j] for j in range(3))
    np.testing.assert_allclose(outputs, again, atol=1e-6)
    np.testing.assert_allclose(trace, expected, atol=1e-5)


# --- the latent flow --------------------------------------------------------------------

def test_with_a_zero_field_positions_move_in_straight_lines():
    model = ODE2VAE(**TINY_VECTOR, frame_interval=0.5)
    _make_field_zero(model)
    s0 = tf.random.stateless_normal((3, 4, 2), seed=[1, 1])
    v0 = tf.random.stateless_normal((3, 4, 2), seed=[2, 2])
    log_q0 = tf.random.stateless_normal((3, 4), seed=[3, 3])
    weights = model.acceleration.sample_weights(3, tf.constant([5, 5]))
    s, v, log_q = model._integrate(s0, v0, weights, 6, log_q0)
    t = 0.5 * np.arange(6)[None, None, :, None]
    np.testing.assert_allclose(s, s0[:, :, None] + v0[:, :, None] * t, atol=1e-5)
    np.testing.assert_allclose(v, np.broadcast_to(v0[:, :, None], v.shape), atol=1e-6)
    np.testing.assert_allclose(log_q, np.broadcast_to(log_q0[..., None], log_q.shape), atol=1e-6)


def test_density_channel_integrates_minus_the_trace_of_a_linear_field():
    model = ODE2VAE(**{**TINY_VECTOR, "bnn_units": ()}, frame_interval=0.25)
    kernel, bias = model.acceleration.mean_weights()[0]           # f(s, v) = [s, v] K + b
    s0 = tf.random.stateless_normal((1, 3, 2), seed=[1, 2])
    v0 = tf.random.stateless_normal((1, 3, 2), seed=[3, 4])
    s, v, log_q = model._integrate(s0, v0, [(kernel, bias)], 5, tf.zeros((1, 3)))
    trace = float(tf.linalg.trace(kernel[0, 2:, :]))               # Tr ∂f/∂v
    np.testing.assert_allclose(log_q[0], -trace * 0.25 * np.arange(5)[None].repeat(3, 0),
                               atol=1e-5)
    # The state z = (s, v, 1) solves a linear ODE: compare with the matrix exponential.
    generator = np.zeros((5, 5))
    generator[:2, 2:4] = np.eye(2)
    generator[2:4, :4] = kernel[0].numpy().T
    generator[2:4, 4] = bias[0].numpy()
    z0 = np.concatenate([s0[0], v0[0], np.ones((3, 1))], axis=1)
    z_end = z0 @ tf.linalg.expm(generator.T * 1.0).numpy()
    np.testing.assert_allclose(s[0, :, -1], z_end[:, :2], atol=1e-4)


def test_adaptive_dopri5_and_fine_fixed_step_rk4_predict_the_same_frames():
    adaptive = ODE2VAE(**TINY_VECTOR, method="dopri5", step_size=None, rtol=1e-6, atol=1e-6)
    fixed = ODE2VAE.from_config({**adaptive.get_config(), "method": "rk4", "step_size": 0.01})
    fixed.set_weights(adaptive.get_weights())
    x = _vector_sequences(frames=8)
    np.testing.assert_allclose(adaptive.reconstruct(x), fixed.reconstruct(x), atol=1e-4)


# --- loss terms ----------------------------------------------------------------------------

def test_beta_is_the_latent_dim_over_the_number_of_bnn_weights():
    model = ODE2VAE(**{**TINY_VECTOR, "latent_dim": 3, "bnn_units": (5,)})
    num_weights = (6 * 5 + 5) + (5 * 3 + 3)
    assert model.acceleration.num_weights == num_weights
    assert model.beta == pytest.approx(3 / num_weights)
    assert ODE2VAE(**TINY_VECTOR, bnn_kl_weight=1 / 600).beta == pytest.approx(1 / 600)
    terms = model.loss_terms(_vector_sequences(), seed=[0, 1])
    assert float(terms["loss"]) == pytest.approx(float(
        terms["nll"] + terms["kl_z"] + model.beta * terms["kl_w"] + 0.1 * terms["kl_enc"]),
        rel=1e-5)


def test_kl_terms_with_a_zero_field_match_the_gaussian_closed_forms():
    """f_W ≡ 0 carries z_0 ~ N(μ, Σ) linearly: z_t = A_t z_0 with A_t = [[I, tI], [0, I]],
    so q(z_t) = N(A_t μ, A_t Σ A_tᵀ) and both Monte Carlo KL terms have closed forms."""
    model = ODE2VAE(**TINY_VECTOR, frame_interval=0.5, num_samples=20000)
    _make_field_zero(model)
    x = _vector_sequences(n=1, frames=5)
    m, q, dt = 2, 2, 0.5
    s_mean, s_var = _encoder_gaussian(model.position_encoder, x[:, 0])
    v_mean, v_var = _encoder_gaussian(model.velocity_encoder, x[:, :m].reshape(1, -1))
    mean0, cov0 = np.concatenate([s_mean, v_mean]), np.diag(np.concatenate([s_var, v_var]))
    kl_z = kl_enc = 0.0
    for k in range(5):
        shear = np.block([[np.eye(q), k * dt * np.eye(q)], [np.zeros((q, q)), np.eye(q)]])
        mean_t, cov_t = shear @ mean0, shear @ cov0 @ shear.T
        kl_z += _gaussian_kl(mean_t, cov_t, np.zeros(2 * q), np.eye(2 * q))
        if k <= 5 - m:
            enc_s, enc_s_var = _encoder_gaussian(model.position_encoder, x[:, k])
            enc_v, enc_v_var = _encoder_gaussian(model.velocity_encoder,
                                                 x[:, k:k + m].reshape(1, -1))
            kl_enc += _gaussian_kl(mean_t, cov_t, np.concatenate([enc_s, enc_v]),
                                   np.diag(np.concatenate([enc_s_var, enc_v_var])))
    for track_density in (True, False):
        model.track_density = track_density
        terms = model.loss_terms(x, seed=[7, 8])
        assert float(terms["kl_z"]) == pytest.approx(kl_z, rel=0.03)
        assert float(terms["kl_enc"]) == pytest.approx(kl_enc, rel=0.03)
    per_weight = 0.5 * (np.exp(-60.0) - 1 + 60)                     # ½(σ² + m² − 1 − log σ²)
    assert float(terms["kl_w"]) == pytest.approx(per_weight * model.acceleration.num_weights,
                                                 rel=1e-5)


# --- training and prediction ------------------------------------------------------------

def test_gradients_are_finite_and_reach_every_weight():
    for config, x in ((TINY_IMAGE, _image_sequences()), (TINY_VECTOR, _vector_sequences())):
        model = ODE2VAE(**config)
        with tf.GradientTape() as tape:
            loss = model.loss_terms(x, seed=[0, 3])["loss"]
        gradients = tape.gradient(loss, model.trainable_variables)
        for variable, gradient in zip(model.trainable_variables, gradients):
            assert gradient is not None, variable.path
            assert np.all(np.isfinite(gradient)), variable.path
            assert np.any(gradient.numpy() != 0), variable.path


def test_a_few_training_steps_lower_the_loss_and_the_error():
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (16, 1))
    t = 0.3 * np.arange(8)[None]
    x = np.stack([np.sin(t + phase), np.cos(t + phase), np.sin(2 * (t + phase)),
                  0.5 * np.cos(t + phase)], axis=-1).astype(np.float32)
    model = ODE2VAE(**{**TINY_VECTOR, "coder_units": (16,)})
    before = model.loss_terms(x, seed=[0, 0])
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    batches = tf.data.Dataset.from_tensors(x).repeat()
    history = model.fit(batches, steps_per_epoch=30, epochs=2, shuffle=False, verbose=0).history
    after = model.loss_terms(x, seed=[0, 0])
    assert set(history) == {"loss", "nll", "kl_z", "kl_w", "kl_enc", "mse"}
    assert float(after["loss"]) < 0.8 * float(before["loss"])
    assert float(after["mse"]) < 0.8 * float(before["mse"])
    assert history["loss"][1] < history["loss"][0]


def test_reconstruct_depends_only_on_the_first_m_frames():
    model = ODE2VAE(**TINY_IMAGE)
    x = _image_sequences(frames=6)
    later_changed = x.copy()
    later_changed[:, 2:] = _image_sequences(frames=4, seed=1)
    prediction = model.reconstruct(x).numpy()
    assert prediction.shape == x.shape and 0 <= prediction.min() <= prediction.max() <= 255
    np.testing.assert_array_equal(prediction, model.reconstruct(later_changed))
    np.testing.assert_array_equal(prediction, model(x))
    given_changed = x.copy()
    given_changed[:, 1] = 255 - given_changed[:, 1]
    assert not np.array_equal(prediction, model.reconstruct(given_changed))


def test_evaluate_reports_the_reconstruction_error_on_the_unit_pixel_scale():
    model = ODE2VAE(**TINY_IMAGE)
    model.compile(optimizer="adam")
    x = _image_sequences(frames=4)
    result = model.evaluate(x, batch_size=2, verbose=0, return_dict=True)
    expected = np.mean(((model.reconstruct(x).numpy() - x)[:, 2:] / 255.0) ** 2)
    assert result["mse"] == pytest.approx(expected, rel=1e-4)


def test_keras_file_round_trip_keeps_config_weights_and_predictions(tmp_path):
    model = ODE2VAE(**TINY_VECTOR, decoder_std=None, gamma=0.5, track_density=False)
    x = _vector_sequences()
    path = tmp_path / "ode2vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ODE2VAE) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.reconstruct(x), model.reconstruct(x), atol=1e-6)
    np.testing.assert_allclose(loaded.loss_terms(x, seed=[1, 2])["loss"],
                               model.loss_terms(x, seed=[1, 2])["loss"], rtol=1e-5)


# --- inputs and arguments ---------------------------------------------------------------

def test_bad_inputs_get_clear_errors():
    model = ODE2VAE(**TINY_IMAGE)
    x = _image_sequences()
    with pytest.raises(TypeError, match="raw pixel values 0–255"):
        model.reconstruct(x.astype(np.uint8))
    with pytest.raises(ValueError, match=r"shape \[N, T, 8, 8, 1\]"):
        model.reconstruct(x[..., 0])
    with pytest.raises(ValueError, match="at least amortization_length = 2 frames"):
        model.reconstruct(x[:, :1])
    nan = x.copy()
    nan[0, 3, 2, 2, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model.loss_terms(nan, seed=[0, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="above 255"):
        model.reconstruct(x * 2.0)


def test_bad_arguments_list_the_accepted_values():
    with pytest.raises(ValueError, match=r"available activations are \['relu', 'sigmoid'"):
        ODE2VAE(**{**TINY_VECTOR, "bnn_units": (4,)}, bnn_activation="gelu")
    with pytest.raises(ValueError, match=r"\(H, W, C\) for images or \(D,\) for vectors"):
        ODE2VAE(data_shape=(28, 28))
    with pytest.raises(ValueError, match="multiples of 4"):
        ODE2VAE(data_shape=(30, 30, 1))
    with pytest.raises(ValueError, match="decoder_std applies to vector data"):
        ODE2VAE(**TINY_IMAGE, decoder_std=1.0)
    with pytest.raises(ValueError, match="available methods"):
        ODE2VAE(**TINY_VECTOR, method="rk5")
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        ODE2VAE(**TINY_VECTOR, gamma=-1.0)


def test_plot_of_truth_and_prediction_is_a_png(tmp_path):
    model = ODE2VAE(**TINY_IMAGE)
    x = _image_sequences(frames=4)
    path = plot_sequence_predictions(x, model.reconstruct(x).numpy(), tmp_path / "rec.png",
                                     given_frames=2)
    assert (tmp_path / "rec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.endswith(
        "rec.png")
    with pytest.raises(ValueError, match="share a shape"):
        plot_sequence_predictions(x, x[:1], tmp_path / "bad.png")
