"""Do an MNIST flow's samples read as digits? Two measures by an independent
digit classifier, reported by `ode-zoo eval` for image flows whose config asks
for them (`"evaluation": {"sample_quality": {"samples": 10000, "seed": 0}}`):

- the **confident share**: the share of samples the classifier puts in one class
  with probability ≥ 0.9 (real MNIST test digits: 97.9%);
- the **Fréchet distance** between the samples' and the test digits' features
  (the classifier's 128-unit penultimate layer; FID's formula with this
  classifier instead of Inception), beside the same distance between 10,000
  training digits and the test digits as the yardstick.

The classifier (`digit_classifier`: two 3×3 convolutions with max pooling, a
128-unit dense layer, softmax over 10 digits; raw pixels 0–255 in) is trained by
`python -m ode_zoo.zoo.sample_quality` on MNIST's 55,000 training images, seeded;
its weights ship with the package (`assets/mnist_digit_classifier.weights.h5`).
It never saw the test digits nor any model's samples.

Example:
    >>> import numpy as np
    >>> a = np.random.default_rng(0).normal(size=(2000, 3))
    >>> round(frechet_distance(a, a + [2.0, 0.0, 0.0]), 6)
    4.0
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.datasets import load_mnist
from ode_zoo.zoo.resumable import resumable_batches

CLASSIFIER_WEIGHTS = Path(__file__).with_name("assets") / "mnist_digit_classifier.weights.h5"
CONFIDENCE = 0.9            # a sample is "read as a digit" at this class probability
YARDSTICK_SIZE = 10_000     # training digits against the test digits: the reference distance
FEATURES = "features"       # the classifier layer whose activations the distance compares


def digit_classifier() -> keras.Model:
    """The measure's MNIST classifier (untrained): raw pixels 0–255 [N, 28, 28, 1]
    → class probabilities [N, 10]; its `features` layer gives 128 values."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Rescaling(1.0 / 255.0),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", name=FEATURES),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax"),
    ], name="mnist_digit_classifier")


def load_digit_classifier(weights: Optional[Path] = None) -> keras.Model:
    """The shipped classifier; a missing or corrupt weights file is a clear error."""
    path = Path(weights or CLASSIFIER_WEIGHTS)
    if not path.is_file():
        raise FileNotFoundError(f"Digit classifier weights {path} not found: reinstall "
                                "ode_zoo or train them with `python -m ode_zoo.zoo.sample_quality`.")
    model = digit_classifier()
    try:
        model.load_weights(str(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"Digit classifier weights {path} cannot be read ({e}); reinstall "
                         "ode_zoo or retrain them.") from e
    return model


def classify(classifier: keras.Model, images: np.ndarray,
             batch_size: int = 1000) -> Tuple[np.ndarray, np.ndarray]:
    """(features [N, 128], class probabilities [N, 10]) of raw-pixel images."""
    both = keras.Model(classifier.inputs,
                       [classifier.get_layer(FEATURES).output, classifier.outputs[0]])
    features, probabilities = both.predict(np.asarray(images, np.float32),
                                           batch_size=batch_size, verbose=0)
    return features.astype(np.float64), probabilities


def confident_share(probabilities: np.ndarray, threshold: float = CONFIDENCE) -> float:
    """The share of images whose most likely class has probability ≥ `threshold`."""
    return float(np.mean(np.max(probabilities, axis=-1) >= threshold))


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_of_moments(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray,
                                cov_b: np.ndarray) -> float:
    """Fréchet (2-Wasserstein²) distance of N(mean_a, cov_a) and N(mean_b, cov_b):
    |Δμ|² + tr(A) + tr(B) − 2·tr((A^½ B A^½)^½)."""
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_cross = np.sum(np.sqrt(np.clip(cross, 0.0, None)))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                 - 2.0 * trace_cross)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance of two feature sets [N, F] through their means and covariances."""
    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError("The Fréchet distance needs at least 2 feature vectors in each set.")
    return frechet_distance_of_moments(np.mean(features_a, 0), np.cov(features_a, rowvar=False),
                                       np.mean(features_b, 0), np.cov(features_b, rowvar=False))


def draw_samples(model: keras.Model, count: int, seed: int = 0, batch_size: int = 500,
                 verbose: int = 1, cache: Optional[Tuple[Path, str]] = None) -> np.ndarray:
    """`count` samples of an image flow from seeded base noise, drawn in batches
    with a progress bar; with `cache` (a path and a key), saved after every batch
    and continued from there (`resumable_batches`)."""
    sample = tf.function(model.sample)

    def batch(index: int) -> np.ndarray:
        start = index * batch_size
        z = tf.random.stateless_normal([min(batch_size, count - start), model.dim],
                                       [seed, start])
        return sample(z).numpy()

    return resumable_batches(-(-count // batch_size), batch, cache, verbose)


def sample_quality(samples: np.ndarray, test_images: np.ndarray, train_images: np.ndarray,
                   classifier: Optional[keras.Model] = None) -> Dict[str, float]:
    """The measures of raw-pixel `samples` against the test digits, with the real
    digits' values beside them:

    sample_confident_share, real_confident_share (of `test_images`),
    sample_frechet_distance (samples ↔ test), real_frechet_distance
    (`train_images` ↔ test, the yardstick) and sample_frechet_ratio (their ratio).
    """
    classifier = classifier or load_digit_classifier()
    sample_features, sample_probabilities = classify(classifier, samples)
    test_features, test_probabilities = classify(classifier, test_images)
    train_features, _ = classify(classifier, train_images)
    distance = frechet_distance(sample_features, test_features)
    yardstick = frechet_distance(train_features, test_features)
    return {"sample_confident_share": confident_share(sample_probabilities),
            "real_confident_share": confident_share(test_probabilities),
            "sample_frechet_distance": distance,
            "real_frechet_distance": yardstick,
            "sample_frechet_ratio": distance / yardstick}


def model_sample_quality(model: keras.Model, settings: Dict[str, Any], split: str = "test",
                         data_dir: Optional[str] = None, verbose: int = 1,
                         cache: Optional[Tuple[Path, str]] = None) -> Dict[str, float]:
    """`sample_quality` of a zoo image flow by its config's `settings` (`samples`,
    `seed`, `batch_size`), against MNIST's `split`; keys prefixed by the split.
    `cache`: see `draw_samples`."""
    samples = draw_samples(model, int(settings.get("samples", 10_000)),
                           int(settings.get("seed", 0)), int(settings.get("batch_size", 500)),
                           verbose, cache)
    test_images, _ = load_mnist(split, data_dir=data_dir)
    train_images, _ = load_mnist("train", data_dir=data_dir)
    measures = sample_quality(samples, test_images, train_images[:YARDSTICK_SIZE])
    return {f"{split}_{name}": value for name, value in measures.items()}


def train_digit_classifier(data_dir: Optional[str] = None, epochs: int = 6, seed: int = 0,
                           verbose: int = 1) -> Tuple[keras.Model, float]:
    """Train the measure's classifier on MNIST's training split (seeded); returns it
    and its accuracy on the validation split."""
    keras.utils.set_random_seed(seed)
    images, labels = load_mnist("train", data_dir=data_dir)
    val_images, val_labels = load_mnist("validation", data_dir=data_dir)
    model = digit_classifier()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images.astype(np.float32), labels, batch_size=128, epochs=epochs,
              verbose=verbose, shuffle=True)
    _, accuracy = model.evaluate(val_images.astype(np.float32), val_labels, verbose=0)
    return model, float(accuracy)


def main(argv: Optional[list] = None) -> None:
    """Train the classifier and write its weights (the file that ships)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(CLASSIFIER_WEIGHTS))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    model, accuracy = train_digit_classifier(args.data_dir, args.epochs, args.seed)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(args.output)
    print(f"validation accuracy {accuracy:.4f}; weights written to {args.output}")


if __name__ == "__main__":
    main()
