"""`check_irregular_series`: the one input check of zoo models that take batches of
padded irregularly sampled series {"times" [N, T], "values" [N, T, D], "mask" [N, T, D]}.

A batch is refused, with an error naming what is expected, when it is not such a
dict, its arrays are not floats, their ranks or shapes disagree, D is not the
model's, the mask holds anything but 0 and 1, times are NaN, inf or decrease along
a row, or an observed value (mask 1) is NaN or inf. Unobserved values are ignored
(they may even be NaN) and come back as 0. Eagerly the error is a `TypeError`
(dtype, structure), `ValueError` (shape) or `InvalidInputsError` (values: both a
`ValueError` and a `tf.errors.InvalidArgumentError`); inside a `tf.function`
(`predict`, `fit`, a SavedModel) an `InvalidArgumentError` with the same message.

Example:
    >>> import numpy as np
    >>> batch = {"times": np.array([[0.0, 1.5]], "float32"),
    ...          "values": np.array([[[2.0], [np.nan]]], "float32"),
    ...          "mask": np.array([[[1.0], [0.0]]], "float32")}
    >>> series = check_irregular_series(batch, 1, "Model")
    >>> series.values.numpy().ravel().tolist()
    [2.0, 0.0]
    >>> check_irregular_series({**batch, "times": batch["times"][:, ::-1]}, 1, "Model")
    Traceback (most recent call last):
    ...
    ode_zoo.models.batches.InvalidInputsError: Model expects times that never decrease along a row (padding repeats a row's last time).
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import tensorflow as tf

from ode_zoo.models.batches import InvalidInputsError, assert_batch_shape

KEYS = ("times", "values", "mask")


class Series(NamedTuple):
    """A checked batch: float32 times [N, T], values [N, T, D] (0 where
    unobserved) and mask [N, T, D] of 0 and 1."""
    times: tf.Tensor
    values: tf.Tensor
    mask: tf.Tensor


def _require(condition: tf.Tensor, message: str) -> Optional[tf.Operation]:
    """Raise `InvalidInputsError(message)` eagerly unless `condition`; in a graph,
    the assertion op."""
    if tf.executing_eagerly():
        if not bool(condition):
            raise InvalidInputsError(message)
        return None
    return tf.debugging.Assert(condition, [message])


def _after(tensor: tf.Tensor, check: Optional[tf.Operation]) -> tf.Tensor:
    if check is None:
        return tensor
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def check_irregular_series(batch: Any, num_variables: int, name: str) -> Series:
    """`batch` as a checked `Series`, or a clear error (see the module docstring).

    Args:
      batch: a dict with "times" [N, T] (e.g. hours), "values" [N, T, D] (raw units)
        and "mask" [N, T, D] (1 where a value was observed).
      num_variables: D, the variables the model reads.
      name: the model's name, for the message.
    """
    expected = (f"{name} expects a dict of float32 times [N, T], values [N, T, "
                f"{num_variables}] and mask [N, T, {num_variables}]")
    if not isinstance(batch, Mapping) or sorted(batch) != sorted(KEYS):
        keys = sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__
        raise TypeError(f"{expected}, got {keys}.")
    tensors = {key: tf.convert_to_tensor(batch[key]) for key in KEYS}
    for key, tensor in tensors.items():
        if not tensor.dtype.is_floating:
            raise TypeError(f"{expected}; {key} is {tensor.dtype.name} (cast it with "
                            "tf.cast(x, tf.float32)).")
    times, values, mask = (tensors[key] for key in KEYS)
    shapes = f"got times {times.shape}, values {values.shape}, mask {mask.shape}"
    static = [times.shape.rank == 2, values.shape.rank == 3, mask.shape.rank == 3]
    if not all(static) or values.shape[2] != num_variables or mask.shape[2] != num_variables \
            or not (times.shape.is_compatible_with(values.shape[:2])
                    and mask.shape.is_compatible_with(values.shape)):
        raise ValueError(f"{expected}; {shapes}.")
    times, values, mask = (
        tf.cast(assert_batch_shape(t, shape, expected), tf.float32)
        for t, shape in ((times, (None, None)), (values, (None, None, num_variables)),
                         (mask, (None, None, num_variables))))
    agree = tf.reduce_all(tf.equal(tf.shape(times), tf.shape(values)[:2])) & tf.reduce_all(
        tf.equal(tf.shape(mask), tf.shape(values)))
    check = _require(agree, f"{expected}; the shapes of times, values and mask disagree.")
    times, values, mask = (_after(t, check) for t in (times, values, mask))
    times = _after(times, _require(tf.reduce_all(tf.math.is_finite(times)),
                                   f"{name} expects finite times; got NaN or inf."))
    times = _after(times, _require(tf.reduce_all(times[:, 1:] >= times[:, :-1]),
                                   f"{name} expects times that never decrease along a row "
                                   "(padding repeats a row's last time)."))
    mask = _after(mask, _require(tf.reduce_all(tf.equal(mask, 0.0) | tf.equal(mask, 1.0)),
                                 f"{name} expects a mask of 0 and 1 (1 where a value was "
                                 "observed)."))
    observed = mask > 0
    values = tf.where(observed, values, tf.zeros_like(values))
    values = _after(values, _require(tf.reduce_all(tf.math.is_finite(values)),
                                     f"{name} expects finite observed values; got NaN or inf "
                                     "where the mask is 1."))
    return Series(times, values, mask)
