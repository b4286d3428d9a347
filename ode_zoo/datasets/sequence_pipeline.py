"""tf.data pipelines of sequences (rotating MNIST, bouncing balls, mocap) with a
reproducible order per (seed, epoch), so a resumed run sees the batches it would
have seen.

Example:
    >>> import numpy as np
    >>> ds = sequence_dataset(np.zeros((10, 16, 28, 28, 1), np.uint8), batch_size=4,
    ...                       shuffle_seed=0)
    >>> [tuple(x.shape) for x in ds][-1], next(iter(ds)).dtype.name
    ((2, 16, 28, 28, 1), 'float32')
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf


def sequence_dataset(sequences: np.ndarray, batch_size: int, shuffle_seed: Optional[int] = None,
                     epoch: int = 0, skip_batches: int = 0,
                     drop_remainder: bool = False) -> tf.data.Dataset:
    """Float32 batches [batch_size, T, ...] of `sequences` (values unchanged).

    With `shuffle_seed`, epoch `epoch` gets its own fixed permutation;
    `skip_batches` starts mid-epoch (for resuming).
    """
    if shuffle_seed is not None:
        sequences = sequences[np.random.default_rng([shuffle_seed, epoch]).permutation(
            len(sequences))]
    ds = tf.data.Dataset.from_tensor_slices(sequences)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).skip(skip_batches)
    return ds.map(lambda x: tf.cast(x, tf.float32)).prefetch(tf.data.AUTOTUNE)
