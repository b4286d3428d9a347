"""Rotating MNIST (ODE2VAE, Yildiz et al. 2019): every handwritten 3 of an MNIST
split turned through 16 frames over 360°, frame k at 360°·k/16 counterclockwise
about the image centre (bilinear interpolation, zero fill), rounded back to raw
pixels 0–255. Deterministic: no randomness, sequences in MNIST's file order.

Splits follow `load_mnist`'s: "train" — the 3s of MNIST's first 55,000 training
images (5,622 sequences); "validation" — the 3s of its last 5,000 (509);
"test" — the 3s of the 10,000 test images (1,010), written by other people than
the training digits.

Example:
    >>> x = load_rotating_mnist("test")                             # doctest: +SKIP
    >>> x.shape, x.dtype                                            # doctest: +SKIP
    ((1010, 16, 28, 28, 1), dtype('uint8'))
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from ode_zoo.datasets.mnist_idx import load_mnist
from ode_zoo.datasets.pipelines import inputs_dataset

SPLITS = ("train", "validation", "test")
NUM_FRAMES = 16
DIGIT = 3


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
    """Images [N, H, W, ...] turned `degrees` counterclockwise (as displayed, row 0 at
    the top) about their centre; bilinear, zero outside. Returns float64.

    Example:
        >>> image = np.arange(9.0).reshape(1, 3, 3)
        >>> bool(np.allclose(rotate_images(image, 90), np.rot90(image, axes=(1, 2))))
        True
    """
    images = np.asarray(images, np.float64)
    if images.ndim > 3:                  # gather on [..., N, H, W]: trailing axes first
        moved = np.moveaxis(images, (1, 2), (-2, -1))
        return np.moveaxis(rotate_images(moved.reshape(-1, *moved.shape[-2:]), degrees)
                           .reshape(moved.shape), (-2, -1), (1, 2))
    height, width = images.shape[1:3]
    theta = np.deg2rad(degrees)
    cos, sin = np.cos(theta), np.sin(theta)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cy, cx = (height - 1) / 2, (width - 1) / 2
    x, y = cols - cx, cy - rows                      # display coordinates, y up
    src_cols = cx + cos * x + sin * y                # each output pixel samples the
    src_rows = cy + sin * x - cos * y                # source turned back by -theta
    r0, c0 = np.floor(src_rows), np.floor(src_cols)
    fr, fc = src_rows - r0, src_cols - c0
    # One row/column of zeros around the image; clipping into it zero-fills the outside.
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1)])
    r0 = np.clip(r0.astype(int) + 1, 0, height + 1)
    c0 = np.clip(c0.astype(int) + 1, 0, width + 1)
    r1, c1 = np.minimum(r0 + 1, height + 1), np.minimum(c0 + 1, width + 1)
    return ((1 - fr) * (1 - fc) * padded[:, r0, c0] + (1 - fr) * fc * padded[:, r0, c1]
            + fr * (1 - fc) * padded[:, r1, c0] + fr * fc * padded[:, r1, c1])


def load_rotating_mnist(split: str = "train", data_dir: Optional[str] = None,
                        num_frames: int = NUM_FRAMES, digit: int = DIGIT) -> np.ndarray:
    """Sequences uint8 [N, num_frames, 28, 28, 1] (raw pixels 0–255) of the `digit`s of
    a split, frame k turned by 360°·k/num_frames; frame 0 is the MNIST image itself."""
    if split not in SPLITS:
        raise ValueError(f"Unknown rotating MNIST split {split!r}; available splits are "
                         f"{list(SPLITS)}.")
    if int(num_frames) != num_frames or num_frames < 1:
        raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}.")
    if digit not in range(10):
        raise ValueError(f"digit must be one of {list(range(10))}, got {digit!r}.")
    images, labels = load_mnist(split, data_dir=data_dir)
    images = images[labels == digit]
    frames = [np.clip(np.rint(rotate_images(images, 360.0 * k / num_frames)), 0, 255)
              .astype(np.uint8) for k in range(int(num_frames))]
    return np.stack(frames, axis=1)


def rotating_mnist(split: str = "train", batch_size: int = 25, data_dir: Optional[str] = None,
                   shuffle_seed: Optional[int] = None, epoch: int = 0, skip_batches: int = 0,
                   drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches float32 [batch_size, 16, 28, 28, 1] of raw pixels 0–255 of
    `load_rotating_mnist(split)`; see `ode_zoo.datasets.inputs_dataset` for the order."""
    return inputs_dataset(load_rotating_mnist(split, data_dir), batch_size,
                          shuffle_seed=shuffle_seed, epoch=epoch,
                          skip_batches=skip_batches, drop_remainder=drop_remainder)
