"""CMU motion capture, subject 35 (walking), as prepared for ODE2VAE (Yildiz et
al. 2019): `mocap35.mat` with `Xtr` 16×300×50, `Xval` 3×300×50, `Xtest` 4×300×50 —
sequences of 300 frames of 50 centred joint-angle channels (overall std ≈ 5.8,
per channel from 0 to ≈ 18). The paper's test MSE (8.09) is on this scale.

The file is found through `ode_zoo.datasets.data_files.search_dirs("ode2vae")`:
`data_dir`, `$ODE_ZOO_DATA/ode2vae`, `$ODE_ZOO_DATA`, then the Keras cache.

Example:
    >>> x = load_mocap("test")                                       # doctest: +SKIP
    >>> x.shape, x.dtype                                             # doctest: +SKIP
    ((4, 300, 50), dtype('float32'))
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from ode_zoo.datasets.data_files import find_data_file
from ode_zoo.datasets.mat_file import read_mat
from ode_zoo.datasets.pipelines import inputs_dataset

FILE_NAME = "mocap35.mat"
FOLDER = "ode2vae"
VARIABLES = {"train": "Xtr", "validation": "Xval", "test": "Xtest"}
SPLITS = tuple(VARIABLES)
NUM_FRAMES, NUM_CHANNELS = 300, 50


def load_mocap(split: str = "train", data_dir: Optional[str] = None) -> np.ndarray:
    """Sequences float32 [N, 300, 50] of a split: "train" (16), "validation" (3), "test" (4)."""
    if split not in VARIABLES:
        raise ValueError(f"Unknown mocap split {split!r}; available splits are {list(SPLITS)}.")
    path = find_data_file(FILE_NAME, FOLDER, data_dir)
    arrays = read_mat(path)
    name = VARIABLES[split]
    if name not in arrays:
        raise ValueError(f"{path} has no variable {name!r} (it has {sorted(arrays)}); "
                         "expected the ODE2VAE mocap35.mat.")
    x = arrays[name]
    if x.ndim != 3 or x.shape[1:] != (NUM_FRAMES, NUM_CHANNELS):
        raise ValueError(f"{path}: {name} has shape {x.shape}, expected "
                         f"[N, {NUM_FRAMES}, {NUM_CHANNELS}].")
    return x.astype(np.float32)


def mocap(split: str = "train", batch_size: int = 16, data_dir: Optional[str] = None,
          shuffle_seed: Optional[int] = None, epoch: int = 0, skip_batches: int = 0,
          drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches float32 [batch_size, 300, 50] of `load_mocap(split)`; see
    `ode_zoo.datasets.inputs_dataset` for the order."""
    return inputs_dataset(load_mocap(split, data_dir), batch_size,
                          shuffle_seed=shuffle_seed, epoch=epoch,
                          skip_batches=skip_batches, drop_remainder=drop_remainder)
