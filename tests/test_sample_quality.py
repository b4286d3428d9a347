"""The sample-quality measure: the Fréchet distance against closed forms, the
confident share, the shipped digit classifier on real digits and on noise, and
the measure through `evaluate_model` for a config that asks for it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ode_zoo
from ode_zoo.datasets import load_mnist
from ode_zoo.zoo.evaluate import evaluate_model
from ode_zoo.zoo.sample_quality import (CLASSIFIER_WEIGHTS, classify, confident_share,
                                        frechet_distance, frechet_distance_of_moments,
                                        load_digit_classifier, sample_quality)


def _mnist_or_skip():
    try:
        return load_mnist("test"), load_mnist("train")
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"MNIST files not found (set ODE_ZOO_DATA): {e}")


def _sqrt_2x2(m: np.ndarray) -> np.ndarray:
    """The square root of a 2×2 positive definite matrix in closed form."""
    s = np.sqrt(np.linalg.det(m))
    return (m + s * np.eye(2)) / np.sqrt(np.trace(m) + 2 * s)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form() -> None:
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance_of_moments(mean_a, np.diag(var_a), mean_b,
                                       np.diag(var_b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_of_non_commuting_covariances_matches_2x2_square_roots() -> None:
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    root_a = _sqrt_2x2(a)
    expected = np.trace(a) + np.trace(b) - 2 * np.trace(_sqrt_2x2(root_a @ b @ root_a))
    assert frechet_distance_of_moments(np.zeros(2), a, np.zeros(2), b) == pytest.approx(
        expected, rel=1e-10)
    assert frechet_distance_of_moments(np.zeros(2), b, np.zeros(2), a) == pytest.approx(
        expected, rel=1e-10)


def test_frechet_distance_of_feature_sets() -> None:
    a = np.random.default_rng(0).normal(size=(5000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # b = 2a + 1: |Δμ|² = |μ_a + 1|², and with Σ_b = 4Σ_a the traces give tr(Σ_a).
    expected = np.sum((a.mean(0) + 1.0) ** 2) + np.trace(np.cov(a, rowvar=False))
    assert frechet_distance(a, 2.0 * a + 1.0) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], a)


def test_confident_share_counts_the_top_class_at_the_threshold() -> None:
    probabilities = np.array([[0.9, 0.1], [0.5, 0.5], [0.05, 0.95], [0.89, 0.11]])
    assert confident_share(probabilities) == 0.5


def test_corrupt_classifier_weights_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_digit_classifier(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_digit_classifier(tmp_path / "missing.weights.h5")


def test_shipped_classifier_reads_real_digits_and_rejects_noise() -> None:
    (test_images, test_labels), (train_images, _) = _mnist_or_skip()
    assert CLASSIFIER_WEIGHTS.is_file()
    classifier = load_digit_classifier()
    _, probabilities = classify(classifier, test_images)
    assert np.mean(probabilities.argmax(-1) == test_labels) > 0.985
    noise = np.random.default_rng(0).integers(0, 256, (500, 28, 28, 1)).astype(np.float32)
    real = sample_quality(test_images[:2000], test_images[2000:4000], train_images[:2000],
                          classifier)
    fake = sample_quality(noise, test_images[2000:4000], train_images[:2000], classifier)
    assert real["sample_confident_share"] > 0.95 and real["sample_frechet_ratio"] < 2.0
    assert fake["sample_confident_share"] < 0.1 and fake["sample_frechet_ratio"] > 20.0
    assert real["real_frechet_distance"] == fake["real_frechet_distance"]


def test_evaluate_model_reports_sample_quality_when_the_config_asks(tmp_path) -> None:
    _mnist_or_skip()
    model = ode_zoo.load("ffjord_mnist", load_weights=False, hidden_filters=[4],
                         eval_solver={"method": "rk4", "num_steps": 1})
    config = {**model.zoo_config, "evaluation": {
        "split": "test", "batch_size": 5000,
        "sample_quality": {"samples": 40, "seed": 0, "batch_size": 20}}}
    metrics = evaluate_model(model, config, verbose=0)
    assert {"test_sample_confident_share", "test_real_confident_share",
            "test_sample_frechet_distance", "test_real_frechet_distance",
            "test_sample_frechet_ratio"} <= set(metrics)
    assert metrics["test_sample_confident_share"] < 0.5         # an untrained flow: noise
    # Resumable (as publish runs it): the same numbers, the samples saved on the way.
    assert evaluate_model(model, config, verbose=0, state_dir=tmp_path) == pytest.approx(metrics)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.npz", "samples.npz"]
