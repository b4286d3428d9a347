"""tf.data pipelines with a reproducible order per (seed, epoch), so a resumed
run sees exactly the batches it would have seen: `classification_dataset`
(images and labels) and `inputs_dataset` (inputs alone: a flow's points or
images, ODE2VAE's sequences). Inputs may also be a dict of arrays with aligned
rows (irregular series: times, values, mask); batches then hold dicts.

Example:
    >>> import numpy as np
    >>> ds = classification_dataset(np.zeros((10, 28, 28, 1), np.uint8), np.arange(10),
    ...                             batch_size=4, shuffle_seed=0, epoch=0)
    >>> [int(x.shape[0]) for x, _ in ds]
    [4, 4, 2]
    >>> ds = inputs_dataset(np.zeros((10, 16, 28, 28, 1), np.uint8), 4, shuffle_seed=0)
    >>> [tuple(x.shape) for x in ds][-1], next(iter(ds)).dtype.name
    ((2, 16, 28, 28, 1), 'float32')
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import tensorflow as tf


def random_shift(images: tf.Tensor, seed: tf.Tensor, pixels: int) -> tf.Tensor:
    """Translate each image by up to `pixels` in each direction (zero fill)."""
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]])
    offsets = tf.random.stateless_uniform([shape[0], 2], seed, 0, 2 * pixels + 1, tf.int32)

    def crop(args):
        image, offset = args
        return tf.slice(image, [offset[0], offset[1], 0], [shape[1], shape[2], shape[3]])

    shifted = tf.map_fn(crop, (padded, offsets), fn_output_signature=images.dtype)
    return tf.ensure_shape(shifted, images.shape)


def _float32(inputs: Any) -> Any:
    """Inputs (a tensor or a dict of them) as float32."""
    return tf.nest.map_structure(lambda x: tf.cast(x, tf.float32), inputs)


def _ordered_batches(arrays: Tuple[np.ndarray, ...], batch_size: int,
                     shuffle_seed: Optional[int], epoch: int, skip_batches: int,
                     drop_remainder: bool) -> tf.data.Dataset:
    """Batches of `arrays` (rows aligned; each an array or a dict of arrays),
    permuted by (shuffle_seed, epoch) when a seed is given, the first
    `skip_batches` batches left out."""
    if shuffle_seed is not None:
        rows = len(tf.nest.flatten(arrays[0])[0])
        order = np.random.default_rng([shuffle_seed, epoch]).permutation(rows)
        arrays = tf.nest.map_structure(lambda a: a[order], arrays)
    ds = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0])
    return ds.batch(batch_size, drop_remainder=drop_remainder).skip(skip_batches)


def classification_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int,
                           shuffle_seed: Optional[int] = None, epoch: int = 0,
                           shift_pixels: int = 0, skip_batches: int = 0,
                           drop_remainder: bool = False) -> tf.data.Dataset:
    """Batches of (float32 raw-pixel images, int64 labels); `images` may also be a
    dict of arrays (irregular series), batched as a dict of float32 tensors.

    With `shuffle_seed`, epoch `epoch` gets its own fixed permutation and
    augmentation noise; `skip_batches` starts mid-epoch (for resuming).

    Example:
        >>> series = {"times": np.zeros((5, 3)), "values": np.zeros((5, 3, 2))}
        >>> x, y = next(iter(classification_dataset(series, np.arange(5), 2, shuffle_seed=0)))
        >>> sorted(x), x["values"].shape, x["times"].dtype.name
        (['times', 'values'], TensorShape([2, 3, 2]), 'float32')
    """
    ds = _ordered_batches((images, labels), batch_size, shuffle_seed, epoch, skip_batches,
                          drop_remainder)
    ds = ds.map(lambda x, y: (_float32(x), y))
    if shift_pixels:
        seed_base = 0 if shuffle_seed is None else shuffle_seed
        ds = ds.enumerate(start=skip_batches).map(
            lambda step, batch: (random_shift(batch[0], tf.stack(
                [tf.cast(seed_base * 100003 + epoch, tf.int64), step]), shift_pixels), batch[1]))
    return ds.prefetch(tf.data.AUTOTUNE)


def inputs_dataset(inputs: np.ndarray, batch_size: int, shuffle_seed: Optional[int] = None,
                   epoch: int = 0, shift_pixels: int = 0, skip_batches: int = 0,
                   drop_remainder: bool = False) -> tf.data.Dataset:
    """Float32 batches of `inputs` alone (values unchanged), in
    `classification_dataset`'s order: with `shuffle_seed`, epoch `epoch` has its
    own fixed permutation; `skip_batches` starts mid-epoch (for resuming).
    `shift_pixels` is accepted for the zoo's common batch signature and must be 0.

    Example:
        >>> import numpy as np
        >>> ds = inputs_dataset(np.arange(10.0)[:, None], 4, shuffle_seed=0, skip_batches=1)
        >>> [b.shape[0] for b in ds]
        [4, 2]
    """
    if shift_pixels:
        raise ValueError("shift_pixels augments classifier images; inputs-only datasets take "
                         f"none (got shift_pixels={shift_pixels}).")
    ds = _ordered_batches((inputs,), batch_size, shuffle_seed, epoch, skip_batches,
                          drop_remainder)
    return ds.map(_float32).prefetch(tf.data.AUTOTUNE)
