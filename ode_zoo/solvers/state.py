"""Packing a nested ODE state into one flat vector and back.

The solvers work on a single 1-D tensor; `StatePacker` converts a `tf.nest`
structure of float tensors (all of one dtype, any shapes) to and from it.

Example:
    >>> import tensorflow as tf
    >>> packer = StatePacker({"x": tf.zeros([2, 3]), "v": tf.ones([4])})
    >>> packer.pack({"x": tf.zeros([2, 3]), "v": tf.ones([4])}).shape
    TensorShape([10])
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf


class StatePacker:
    """Flattens a nested structure like `template` to a vector and back."""

    def __init__(self, template: Any):
        leaves = [tf.convert_to_tensor(x) for x in tf.nest.flatten(template)]
        if not leaves:
            raise ValueError("y0 must contain at least one tensor.")
        dtypes = {x.dtype for x in leaves}
        if len(dtypes) != 1:
            raise TypeError(
                f"All tensors of y0 must share one dtype, got {sorted(d.name for d in dtypes)}.")
        self.dtype = leaves[0].dtype
        if not self.dtype.is_floating:
            raise TypeError(
                f"y0 must be a floating-point tensor (float32 or float64), got {self.dtype.name}. "
                "Cast it, e.g. tf.cast(y0, tf.float32).")
        self._structure = template
        self._static_shapes = [x.shape for x in leaves]
        self._shapes = [tf.shape(x) for x in leaves]
        self._sizes = [tf.size(x) for x in leaves]

    def pack(self, structure: Any) -> tf.Tensor:
        """The leaves of `structure`, flattened and concatenated."""
        leaves = tf.nest.flatten(structure)
        flat = [tf.reshape(x, [-1]) for x in leaves]
        return flat[0] if len(flat) == 1 else tf.concat(flat, axis=0)

    def unpack(self, vector: tf.Tensor) -> Any:
        """The structure whose packed form is `vector`."""
        parts = [vector] if len(self._sizes) == 1 else tf.split(vector, self._sizes)
        leaves = [self._reshape(p, shape, static)
                  for p, shape, static in zip(parts, self._shapes, self._static_shapes)]
        return tf.nest.pack_sequence_as(self._structure, leaves)

    def unpack_trajectory(self, vectors: tf.Tensor) -> Any:
        """Like `unpack` for a stack of packed states [T, n] -> leaves [T, ...]."""
        parts = ([vectors] if len(self._sizes) == 1
                 else tf.split(vectors, self._sizes, axis=1))
        leaves = [self._reshape(p, tf.concat([tf.shape(vectors)[:1], shape], 0),
                                vectors.shape[:1].concatenate(static))
                  for p, shape, static in zip(parts, self._shapes, self._static_shapes)]
        return tf.nest.pack_sequence_as(self._structure, leaves)

    def check_derivative(self, derivative: Any) -> None:
        """Raise a clear error when func's output does not match y's structure."""
        try:
            tf.nest.assert_same_structure(self._structure, derivative)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"func(t, y) must return the same structure as y0; {e}") from None
        for i, (leaf, static) in enumerate(zip(tf.nest.flatten(derivative), self._static_shapes)):
            leaf = tf.convert_to_tensor(leaf)
            if not leaf.shape.is_compatible_with(static):
                raise ValueError(
                    f"func(t, y) returned shape {leaf.shape} for state leaf {i}, "
                    f"whose shape is {static}.")
            if leaf.dtype != self.dtype:
                raise TypeError(
                    f"func(t, y) returned dtype {leaf.dtype.name} for state leaf {i}; "
                    f"the state is {self.dtype.name}.")

    @staticmethod
    def _reshape(x: tf.Tensor, shape: tf.Tensor, static: tf.TensorShape) -> tf.Tensor:
        out = tf.reshape(x, shape)
        out.set_shape(static)
        return out
