"""Trace of the Jacobian of a vector field, exact or by Hutchinson's estimator.

Each estimator maps a field `fn(t, z)` on batch-major states z [N, D] to a
`TraceEstimate`: the derivative f(t, z), the per-example trace Tr(∂f/∂z) and
the per-example squared Frobenius norm ‖∂f/∂z‖²_F (exact) or its unbiased
estimate ‖εᵀ∂f/∂z‖² (Hutchinson), which RNODE's Jacobian regularizer integrates.

Hutchinson's estimator εᵀ(∂f/∂z)ε costs one vector–Jacobian product. Its noise ε
is an argument, so a caller draws it once per solve (`TraceEstimator.sample_noise`
with a stateless seed): fresh noise at every evaluation makes an adaptive
solver's step count explode.

Example:
    >>> import tensorflow as tf
    >>> a = tf.constant([[1.0, 2.0], [0.0, 3.0]])
    >>> estimate = exact_trace(lambda t, z: tf.matmul(z, a, transpose_b=True),
    ...                        tf.constant(0.0), tf.ones([4, 2]))
    >>> estimate.trace.numpy().tolist()
    [4.0, 4.0, 4.0, 4.0]
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Union

import tensorflow as tf

Field = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


class TraceEstimate(NamedTuple):
    """What one evaluation of an estimator returns.

    Attributes:
      derivative: f(t, z), shape [N, D].
      trace: Tr(∂f/∂z) per example (exact or estimated), shape [N].
      frobenius: ‖∂f/∂z‖²_F per example (exact or estimated), shape [N].
    """

    derivative: tf.Tensor
    trace: tf.Tensor
    frobenius: tf.Tensor


def exact_trace(fn: Field, t: tf.Tensor, z: tf.Tensor,
                noise: Optional[tf.Tensor] = None) -> TraceEstimate:
    """Trace and Frobenius norm from the full per-example Jacobian, one
    vector–Jacobian product per output dimension (D of them: fine for small D,
    which must be static). `noise` is ignored.

    Assumes example i of f depends only on example i of z (no batch statistics).

    Example:
        >>> import tensorflow as tf
        >>> exact_trace(lambda t, z: 2.0 * z, tf.constant(0.0),
        ...             tf.ones([1, 3])).trace.numpy().tolist()
        [6.0]
    """
    del noise
    dim = z.shape[-1]
    if dim is None:
        raise ValueError("exact_trace needs a static last dimension D of z; use a "
                         "Hutchinson estimator for states of unknown width.")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        derivative = fn(t, z)
        components = [derivative[:, i] for i in range(dim)]
    rows = [tape.gradient(c, z, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            for c in components]                    # rows[i][n] = ∂f_i/∂z of example n
    del tape
    trace = tf.add_n([row[:, i] for i, row in enumerate(rows)])
    frobenius = tf.add_n([tf.reduce_sum(tf.square(row), axis=-1) for row in rows])
    return TraceEstimate(derivative, trace, frobenius)


def hutchinson_trace(fn: Field, t: tf.Tensor, z: tf.Tensor,
                     noise: Optional[tf.Tensor] = None) -> TraceEstimate:
    """Hutchinson's estimate εᵀ(∂f/∂z)ε and ‖εᵀ∂f/∂z‖² from one vector–Jacobian
    product; `noise` ε [N, D] has E[εεᵀ] = I (Gaussian or Rademacher).

    Example:
        >>> import tensorflow as tf
        >>> hutchinson_trace(lambda t, z: 2.0 * z, tf.constant(0.0), tf.ones([1, 3]),
        ...                  noise=tf.constant([[1.0, -1.0, 1.0]])).trace.numpy().tolist()
        [6.0]
    """
    if noise is None:
        raise ValueError("hutchinson_trace needs noise of z's shape [N, D].")
    with tf.GradientTape() as tape:
        tape.watch(z)
        derivative = fn(t, z)
    vjp = tape.gradient(derivative, z, output_gradients=noise,
                        unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return TraceEstimate(derivative, tf.reduce_sum(vjp * noise, axis=-1),
                         tf.reduce_sum(tf.square(vjp), axis=-1))


def stateless_seed(seed: Optional[Union[int, tf.Tensor]]) -> tf.Tensor:
    """An int64 seed of shape [2] for stateless random ops: [seed, 0] for an int, a
    shape-[2] seed as given, and a fresh random seed for None (drawn statefully,
    so it follows `tf.random.set_seed`).

    Example:
        >>> stateless_seed(7).numpy().tolist()
        [7, 0]
    """
    if seed is None:
        return tf.random.uniform([2], minval=-2 ** 31, maxval=2 ** 31 - 1, dtype=tf.int64)
    if isinstance(seed, int):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(seed, tf.int64)
    if seed.shape != [2]:
        raise ValueError("seed must be an int, None or a tensor of shape [2], got shape "
                         f"{seed.shape}.")
    return seed


def gaussian_noise(shape: tf.Tensor, dtype: tf.DType, seed: tf.Tensor) -> tf.Tensor:
    """Standard normal noise from a stateless seed (an int32/int64 tensor of shape [2])."""
    return tf.random.stateless_normal(shape, seed, dtype=dtype)


def rademacher_noise(shape: tf.Tensor, dtype: tf.DType, seed: tf.Tensor) -> tf.Tensor:
    """±1 with probability 1/2 each, from a stateless seed of shape [2]."""
    bits = tf.random.stateless_uniform(shape, seed, minval=0, maxval=2, dtype=tf.int32)
    return tf.cast(2 * bits - 1, dtype)


class TraceEstimator(NamedTuple):
    """An estimator and the noise it needs (None: it needs none).

    Example:
        >>> import tensorflow as tf
        >>> estimator = TRACE_ESTIMATORS["hutchinson_rademacher"]
        >>> estimator.sample_noise(tf.constant([2, 3]), tf.float32, tf.constant([1, 2])).shape
        TensorShape([2, 3])
    """

    estimate: Callable[..., TraceEstimate]
    noise: Optional[Callable[[tf.Tensor, tf.DType, tf.Tensor], tf.Tensor]]

    def sample_noise(self, shape: tf.Tensor, dtype: tf.DType,
                     seed: tf.Tensor) -> Optional[tf.Tensor]:
        """Noise for one whole solve, or None for an estimator without noise."""
        return None if self.noise is None else self.noise(shape, dtype, seed)


TRACE_ESTIMATORS: Dict[str, TraceEstimator] = {
    "exact": TraceEstimator(exact_trace, None),
    "hutchinson_gaussian": TraceEstimator(hutchinson_trace, gaussian_noise),
    "hutchinson_rademacher": TraceEstimator(hutchinson_trace, rademacher_noise),
}
