"""Pictures of sequence predictions (ODE2VAE): ground truth against prediction,
written to a PNG. Images show as rows of frames (truth above prediction); vectors
(mocap) as the channels' curves over time. Frames before `given_frames` are
the ones the model saw. `write_predictions` does it for a zoo sequence model on
its test split (`ode-zoo predict NAME`).
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional, Union

import keras
import numpy as np
from matplotlib.figure import Figure

from ode_zoo.models.sequence_model import SequenceModel
from ode_zoo.zoo.recipes import split_arrays


def _plot_images(figure: Figure, truth: np.ndarray, prediction: np.ndarray,
                 given_frames: int) -> None:
    num_sequences, num_frames = truth.shape[:2]
    axes = figure.subplots(2 * num_sequences, num_frames, squeeze=False)
    top = max(float(truth.max()), 1e-12)
    for i in range(num_sequences):
        for k in range(num_frames):
            for row, frames in ((2 * i, truth), (2 * i + 1, prediction)):
                ax = axes[row, k]
                ax.imshow(frames[i, k, :, :, 0], cmap="gray", vmin=0, vmax=top)
                ax.set_xticks([])
                ax.set_yticks([])
            if k < given_frames:
                axes[2 * i, k].set_title("given", fontsize=7)
        axes[2 * i, 0].set_ylabel("truth", fontsize=8)
        axes[2 * i + 1, 0].set_ylabel("predicted", fontsize=8)


def _plot_vectors(figure: Figure, truth: np.ndarray, prediction: np.ndarray,
                  given_frames: int, num_channels: int) -> None:
    channels = np.argsort(truth[0].std(axis=0))[::-1][:num_channels]   # the most varying
    columns = min(3, len(channels))
    axes = figure.subplots(-(-len(channels) // columns), columns, squeeze=False).ravel()
    time = np.arange(truth.shape[1])
    for ax, channel in zip(axes, channels):
        ax.plot(time, truth[0, :, channel], "k.", markersize=2, label="truth")
        ax.plot(time, prediction[0, :, channel], "b-", linewidth=1, label="predicted")
        ax.axvspan(0, given_frames - 1, color="0.85")
        ax.set_title(f"channel {channel}", fontsize=8)
    axes[0].legend(fontsize=7)
    for ax in axes[len(channels):]:
        ax.axis("off")


def plot_sequence_predictions(truth: np.ndarray, prediction: np.ndarray,
                              output_png: Union[str, os.PathLike], given_frames: int = 3,
                              num_sequences: int = 4, num_channels: int = 6) -> str:
    """Write a PNG of truth vs prediction and return its path.

    Args:
      truth, prediction: arrays of one shape, images [N, T, H, W, 1] or vectors
        [N, T, D] (any scale; images drawn on truth's range).
      output_png: the file to write.
      given_frames: frames the prediction was conditioned on (marked).
      num_sequences: image sequences drawn (the first ones).
      num_channels: vectors: the most varying channels of the first sequence drawn.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).random((2, 5, 8, 8, 1))
        >>> plot_sequence_predictions(x, x[::-1], "frames.png")
        'frames.png'
        >>> plot_sequence_predictions(x.reshape(2, 5, 64), x.reshape(2, 5, 64), "curves.png")
        'curves.png'
    """
    truth, prediction = np.asarray(truth, np.float32), np.asarray(prediction, np.float32)
    if truth.shape != prediction.shape or truth.ndim not in (3, 5):
        raise ValueError(f"truth and prediction must share a shape [N, T, H, W, 1] or "
                         f"[N, T, D], got {truth.shape} and {prediction.shape}.")
    if truth.ndim == 5:
        n, t = min(num_sequences, truth.shape[0]), truth.shape[1]
        figure = Figure(figsize=(0.8 * t, 1.7 * n))
        _plot_images(figure, truth[:n], prediction[:n], given_frames)
    else:
        figure = Figure(figsize=(12, 2.5 * -(-min(num_channels, truth.shape[2]) // 3)))
        _plot_vectors(figure, truth, prediction, given_frames, num_channels)
    figure.tight_layout()
    figure.savefig(output_png, dpi=80)
    return str(output_png)


class Predictions(NamedTuple):
    """What `write_predictions` drew: the PNG, the sequences and their error."""
    output: str
    num_sequences: int
    mse: float

    @property
    def summary(self) -> str:
        return (f"predicted {self.num_sequences} test sequences from their first frames: "
                f"MSE {self.mse:.4g}")


def write_predictions(model: keras.Model, output: Union[str, os.PathLike], num: int = 4,
                      data_dir: Optional[str] = None) -> Predictions:
    """Predict the first `num` test sequences of a zoo sequence model (from
    `ode_zoo.load`) from their first m frames and draw them against the truth.
    The returned `mse` is over the predicted frames m.., pixels on [0, 1].

    Example:
        >>> import ode_zoo
        >>> model = ode_zoo.load("ode2vae_mocap", load_weights=False)   # doctest: +SKIP
        >>> write_predictions(model, "mocap.png", num=2).output          # doctest: +SKIP
        'mocap.png'
    """
    config = getattr(model, "zoo_config", None) or {}
    if not isinstance(model, SequenceModel):
        raise ValueError(f"`ode-zoo predict` draws zoo sequence models (family 'sequence_vae'); "
                         f"{config.get('name', 'this model')!r} is a "
                         f"{getattr(model, 'family', type(model).__name__)!r} model.")
    sequences, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    truth = sequences[:num].astype(np.float32)
    prediction = np.asarray(model.reconstruct(truth))
    m, scale = model.amortization_length, 255.0 if model.is_image else 1.0
    mse = float(np.mean(np.square((prediction[:, m:] - truth[:, m:]) / scale)))
    path = plot_sequence_predictions(truth, prediction, output, given_frames=m,
                                     num_sequences=num)
    return Predictions(path, len(truth), mse)
