"""Datasets as numpy arrays and tf.data pipelines.

Example:
    >>> ds = mnist("test", batch_size=500)          # doctest: +SKIP
    >>> images, labels = next(iter(ds))             # doctest: +SKIP
    >>> images.shape, images.dtype                  # doctest: +SKIP
    (TensorShape([500, 28, 28, 1]), tf.float32)
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from ode_zoo.datasets.bouncing_balls import (bouncing_balls, load_bouncing_balls, render_balls,
                                             simulate_balls)
from ode_zoo.datasets.mnist_idx import SPLITS as MNIST_SPLITS
from ode_zoo.datasets.mnist_idx import load_mnist
from ode_zoo.datasets.mocap import load_mocap, mocap
from ode_zoo.datasets.physionet2012 import (PhysioNet2012, VariableRanges, physionet2012,
                                            scale_values, unscale_values, variable_ranges)
from ode_zoo.datasets.pipelines import classification_dataset, inputs_dataset
from ode_zoo.datasets.rotating_mnist import load_rotating_mnist, rotate_images, rotating_mnist
from ode_zoo.datasets.toy2d import TOY_SETS, sample_toy, toy_dataset


def mnist(split: str = "train", batch_size: int = 128, data_dir: Optional[str] = None,
          shuffle_seed: Optional[int] = None, epoch: int = 0,
          shift_pixels: int = 0) -> tf.data.Dataset:
    """MNIST batches of (float32 raw pixels 0–255 [N, 28, 28, 1], int64 labels).

    Reads the idx files as `load_mnist` does (ODE_ZOO_DATA, the Keras cache, else
    the Keras download). With `shuffle_seed`, each `epoch` has its own fixed order.
    """
    images, labels = load_mnist(split, data_dir=data_dir)
    return classification_dataset(images, labels, batch_size, shuffle_seed=shuffle_seed,
                                  epoch=epoch, shift_pixels=shift_pixels)


__all__ = ["mnist", "load_mnist", "MNIST_SPLITS", "classification_dataset", "sample_toy",
           "toy_dataset", "TOY_SETS", "rotating_mnist", "load_rotating_mnist", "rotate_images",
           "bouncing_balls", "load_bouncing_balls", "simulate_balls", "render_balls", "mocap",
           "load_mocap", "inputs_dataset", "physionet2012", "PhysioNet2012", "variable_ranges",
           "VariableRanges", "scale_values", "unscale_values"]
