"""Zoo demo: load the pretrained `odenet_mnist` by name, classify MNIST test
digits and draw them in a PNG grid with the predicted labels. Without the MNIST
files it classifies the 64 test digits shipped with the package (`shipped_digits`)
and says so.

Example:
    >>> from ode_zoo.demos.digits import run_digits_demo
    >>> result = run_digits_demo("digits.png", count=8, verbose=0)   # doctest: +SKIP
    >>> 0.0 <= result.accuracy <= 1.0                                 # doctest: +SKIP
    True
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from ode_zoo.demos.shipped_digits import demo_test_digits


@dataclass(frozen=True)
class DigitsResult:
    """What one run of the digits demo produced."""

    output: Path
    count: int
    accuracy: float
    forward_nfe: float
    seconds: float


def plot_digits(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                confidences: np.ndarray, output: Path, title: str) -> None:
    """A grid of digits titled with prediction and confidence (red when wrong)."""
    columns = 8
    rows = int(np.ceil(len(images) / columns))
    figure = Figure(figsize=(columns * 1.3, rows * 1.5 + 0.6))
    figure.suptitle(title, fontsize=10)
    for i, (image, label, predicted, confidence) in enumerate(
            zip(images, labels, predictions, confidences)):
        axis = figure.add_subplot(rows, columns, i + 1)
        axis.imshow(image[..., 0], cmap="gray_r", vmin=0, vmax=255)
        axis.set_title(f"{predicted} ({confidence:.0%})", fontsize=9,
                       color="black" if predicted == label else "red")
        axis.axis("off")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)


def run_digits_demo(output: str | Path = "digits.png", count: int = 32,
                    data_dir: Optional[str] = None, verbose: int = 1) -> DigitsResult:
    """Classify the first `count` test digits (at most the 64 shipped ones when the
    test set is not found) with the pretrained odenet_mnist."""
    import ode_zoo

    started = time.time()
    model = ode_zoo.load("odenet_mnist")
    images, labels = demo_test_digits(count, data_dir, print if verbose else lambda _: None)
    count = len(images)
    model.reset_metrics()             # count only this batch's solver evaluations
    logits = model.predict(images.astype(np.float32), verbose=verbose)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predictions = probabilities.argmax(axis=1)
    accuracy = float(np.mean(predictions == labels))
    forward_nfe = float(model.ode_block.nfe_metric.result())
    output = Path(output)
    plot_digits(images, labels, predictions, probabilities.max(axis=1), output,
                f"odenet_mnist on {count} MNIST test digits: {accuracy:.0%} correct, "
                f"{forward_nfe:.0f} ODE evaluations per batch (dopri5)")
    return DigitsResult(output, count, accuracy, forward_nfe, time.time() - started)
