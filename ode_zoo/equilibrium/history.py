"""Ring buffers of per-sample vectors for the quasi-Newton methods (`Anderson`,
`Broyden`): [batch, memory, n] tensors whose slot `count % memory` every sample
writes at the same iteration `count` (a scalar), so a write touches one row per
sample and no per-sample slot bookkeeping is needed. A sample forgets its
history by moving its `start` to the current count: slots written before it
are masked out (in the small [batch, memory] coefficient space, never by
rewriting the buffers).

Example:
    >>> import tensorflow as tf
    >>> buffer = write(tf.zeros([2, 3, 1]), tf.constant(4), tf.ones([2, 1]))
    >>> buffer[:, :, 0].numpy()                     # slot 4 % 3 = 1
    array([[0., 1., 0.],
           [0., 1., 0.]], dtype=float32)
    >>> valid(tf.constant(5), tf.constant([0, 4]), 3).numpy()   # slots written at 2, 3, 4
    array([[ True,  True,  True],
           [False,  True, False]])
"""
from __future__ import annotations

import tensorflow as tf


def write(buffer: tf.Tensor, count: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """buffer [batch, memory, n] with slot count % memory set to x [batch, n].

    A select, not a scatter: on CPU outside XLA, `tf.tensor_scatter_nd_update`
    copies the buffer too and took 2.5 times as long (profiled in a while loop)."""
    memory = buffer.shape[1]
    slot = tf.one_hot(count % memory, memory, on_value=True, off_value=False)
    return tf.where(slot[None, :, None], x[:, None, :], buffer)


def valid(count: tf.Tensor, start: tf.Tensor, memory: int) -> tf.Tensor:
    """bool [batch, memory]: the slot holds an entry written at an iteration in
    [start, count) (count entries written so far, one per iteration)."""
    slots = tf.range(memory)
    written = count - 1 - tf.math.floormod(count - 1 - slots, memory)   # last write of each slot
    return (written[None, :] >= start[:, None]) & (written[None, :] >= 0)
