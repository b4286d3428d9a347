"""What every zoo model's input checks share: `has_no_examples` (entry points
return an empty result for an empty batch), `assert_batch_shape` (the run-time
shape check a SavedModel signature lacks) and `InvalidInputsError` (the eager
error of refused values).

Example:
    >>> import tensorflow as tf
    >>> has_no_examples(tf.zeros((0, 2))), has_no_examples(tf.zeros((3, 2)))
    (True, False)
    >>> @tf.function(input_signature=[tf.TensorSpec([None, 2])])
    ... def points(x):
    ...     return assert_batch_shape(x, (None, 2), "Model expects points of shape [N, 2]")
    >>> points.get_concrete_function()(tf.zeros((1, 2))).shape
    TensorShape([1, 2])
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import tensorflow as tf


class InvalidInputsError(tf.errors.InvalidArgumentError, ValueError):
    """Input values a model refuses, raised eagerly; catch it as `ValueError` or,
    as inside `predict`, `tf.errors.InvalidArgumentError`."""

    def __init__(self, message: str, *args: Any):
        # Keras re-raises errors as type(e)(node_def, op, message, ...): keep that form.
        super().__init__(*((message, *args) if args else (None, None, message)))


def has_no_examples(batch: Any) -> bool:
    """Whether `batch` (an array, or a dict or tuple of them) is known to hold no
    examples (the leading axis of its first array is 0).

    Entry points return an empty result for such a batch instead of running their
    layers on it: TensorFlow's CPU convolution gives an empty batch the wrong
    number of channels, and Keras' `predict` fails on it.
    """
    leaves = tf.nest.flatten(batch)
    shape = tf.TensorShape(getattr(leaves[0], "shape", None) if leaves else None)
    return bool(shape.rank) and shape[0] == 0


def assert_batch_shape(x: tf.Tensor, shape: Sequence[Optional[int]], message: str) -> tf.Tensor:
    """`x` once its run-time shape is known to be `shape` (None: any size).

    Inside a `tf.function` the tensor that arrives can differ from its static
    shape: a SavedModel signature runs on any shape it is fed. The check then
    fails with an `InvalidArgumentError` of `message` (what the model expects) and
    the shape it got, instead of a wrong-shaped answer or an error deep inside a
    layer.
    Eagerly, shapes are static and checked before: `x` is returned as it is.
    """
    if tf.executing_eagerly():
        return x
    actual = tf.shape(x, out_type=tf.int64)
    padded = tf.concat([actual, tf.ones([len(shape)], tf.int64)], 0)[:len(shape)]
    wanted = tf.stack([padded[i] if d is None else tf.constant(d, tf.int64)
                       for i, d in enumerate(shape)])
    # The graph folds the static rank into constants: compare run-time sizes instead.
    valid = (tf.reduce_all(tf.equal(padded, wanted))
             & tf.equal(tf.size(x, out_type=tf.int64), tf.reduce_prod(wanted)))
    check = tf.debugging.Assert(valid, [f"{message}; got shape", actual])
    with tf.control_dependencies([check]):
        # What passes the sizes with another rank (as [N, 2, 1] for [N, 2]) is
        # refused by ensure_shape, with TensorFlow's message.
        return tf.ensure_shape(x, shape)
