"""The output buffer shared by the solver loops: one packed state per output
time, NaN where a failed solve never arrived.

Example:
    >>> import tensorflow as tf
    >>> buf = new_outputs(tf.constant([1.0, 2.0]), num_outputs=3)
    >>> finish_outputs(buf, tf.constant([1.0, 2.0]), written=1, num_outputs=3).shape
    TensorShape([3, 2])
"""
from __future__ import annotations

import tensorflow as tf


def new_outputs(y0: tf.Tensor, num_outputs) -> tf.TensorArray:
    """A buffer with y0 written at index 0."""
    buffer = tf.TensorArray(y0.dtype, size=num_outputs, element_shape=y0.shape)
    return buffer.write(0, y0)


def finish_outputs(buffer: tf.TensorArray, y0: tf.Tensor, written, num_outputs) -> tf.Tensor:
    """Stack the buffer after filling the entries [written, num_outputs) with NaN."""
    nan = tf.fill(tf.shape(y0), tf.constant(float("nan"), y0.dtype))

    def fill(i, buf):
        return i + 1, buf.write(i, nan)

    _, buffer = tf.while_loop(lambda i, _: i < num_outputs, fill, (written, buffer),
                              maximum_iterations=num_outputs)
    return buffer.stack()
