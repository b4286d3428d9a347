"""Flow matching: conditional probability paths, their target velocities, and
minibatch optimal-transport couplings (pure TF, no Keras).

A continuous normalizing flow dx/dt = v(t, x) that carries noise x0 ~ N(0, I)
at t = 0 to data x1 at t = 1 can be trained without solving an ODE: draw a pair
(x0, x1), a time t ~ U[0, 1], a point x_t on a path between them, and regress
v(t, x_t) on the path's velocity u_t (Lipman et al. 2023; Tong et al. 2023;
Liu et al. 2023). The paths:

- `ot_path` (Lipman's optimal-transport path, rectified flow for σ_min = 0):
  x_t = (1 − (1 − σ_min)·t)·x0 + t·x1,  u_t = x1 − (1 − σ_min)·x0.
  Its marginal at t = 1 is the data blurred by N(0, σ_min²).
- `independent_path` (Tong's I-CFM): x_t = (1 − t)·x0 + t·x1 + σ·ε,
  u_t = x1 − x0, with ε ~ N(0, I) the path's own noise.

`sinkhorn_pairing` re-pairs a minibatch so that noise and data are matched by
an entropic optimal-transport plan (OT-CFM): straighter paths, fewer solver
steps for sampling and likelihoods.

Example:
    >>> import tensorflow as tf
    >>> x0, x1 = tf.zeros([2, 3]), tf.ones([2, 3])
    >>> x_t, u_t = ot_path(x0, x1, tf.constant([0.25, 1.0]), sigma_min=0.0)
    >>> x_t.numpy()[:, 0].tolist(), u_t.numpy()[:, 0].tolist()
    ([0.25, 1.0], [1.0, 1.0])
"""
from __future__ import annotations

from typing import Optional, Tuple

import tensorflow as tf

PATHS = ("ot", "independent")
COUPLINGS = ("independent", "sinkhorn")


def _per_example(t: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Times [N] shaped to broadcast over the example axes of x [N, ...]."""
    t = tf.cast(t, x.dtype)
    return tf.reshape(t, tf.concat([tf.shape(t), tf.ones([tf.rank(x) - 1], tf.int32)], 0))


def ot_path(x0: tf.Tensor, x1: tf.Tensor, t: tf.Tensor,
            sigma_min: float = 0.0) -> Tuple[tf.Tensor, tf.Tensor]:
    """(x_t, u_t) of the optimal-transport conditional path from noise x0 to data x1.

    Args:
      x0, x1: noise and data, shape [N, ...].
      t: times in [0, 1], shape [N].
      sigma_min: width of the path's end around x1 (0: rectified flow).

    Example:
        >>> import tensorflow as tf
        >>> x_t, u_t = ot_path(tf.ones([1, 2]), tf.zeros([1, 2]), tf.constant([1.0]), 0.1)
        >>> x_t.numpy().astype(float).round(6).tolist(), u_t.numpy().astype(float).round(6).tolist()
        ([[0.1, 0.1]], [[-0.9, -0.9]])
    """
    t = _per_example(t, x0)
    x_t = (1.0 - (1.0 - sigma_min) * t) * x0 + t * x1
    return x_t, x1 - (1.0 - sigma_min) * x0


def independent_path(x0: tf.Tensor, x1: tf.Tensor, t: tf.Tensor, sigma: float,
                     noise: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(x_t, u_t) of Tong's independent-coupling path: a straight line from x0 to x1
    blurred by σ·noise (noise ~ N(0, I), shape of x0).

    Example:
        >>> import tensorflow as tf
        >>> x_t, u_t = independent_path(tf.zeros([1, 2]), tf.ones([1, 2]),
        ...                             tf.constant([0.5]), 0.1, tf.ones([1, 2]))
        >>> x_t.numpy().astype(float).round(6).tolist(), u_t.numpy().tolist()
        ([[0.6, 0.6]], [[1.0, 1.0]])
    """
    t = _per_example(t, x0)
    return (1.0 - t) * x0 + t * x1 + sigma * noise, x1 - x0


def squared_distances(x0: tf.Tensor, x1: tf.Tensor) -> tf.Tensor:
    """C[i, j] = ‖x0_i − x1_j‖² of two batches [N, ...], shape [N, N]."""
    a = tf.reshape(x0, [tf.shape(x0)[0], -1])
    b = tf.reshape(x1, [tf.shape(x1)[0], -1])
    cost = (tf.reduce_sum(a * a, 1)[:, None] + tf.reduce_sum(b * b, 1)[None, :]
            - 2.0 * tf.matmul(a, b, transpose_b=True))
    return tf.maximum(cost, 0.0)


def sinkhorn_log_plan(cost: tf.Tensor, regularization: float = 0.01,
                      iterations: int = 100) -> tf.Tensor:
    """log π of the entropic optimal-transport plan between two uniform marginals
    of size N for the cost matrix [N, N] (log-domain Sinkhorn iterations).

    `regularization` is ε relative to the mean cost: small values approach the
    exact assignment, but need more iterations.

    Example:
        >>> import tensorflow as tf
        >>> plan = tf.exp(sinkhorn_log_plan(tf.constant([[0.0, 1.0], [1.0, 0.0]]), 0.05))
        >>> plan.numpy().round(3).tolist()
        [[0.5, 0.0], [0.0, 0.5]]
    """
    n = tf.shape(cost)[0]
    log_marginal = -tf.math.log(tf.cast(n, cost.dtype))
    epsilon = regularization * tf.maximum(tf.reduce_mean(cost), 1e-12)
    kernel = -cost / epsilon
    f = tf.zeros([n], cost.dtype)
    g = tf.zeros([n], cost.dtype)
    for _ in range(iterations):
        f = log_marginal - tf.reduce_logsumexp(kernel + g[None, :], axis=1)
        g = log_marginal - tf.reduce_logsumexp(kernel + f[:, None], axis=0)
    return kernel + f[:, None] + g[None, :]


def sinkhorn_pairing(x0: tf.Tensor, x1: tf.Tensor, regularization: float = 0.01,
                     iterations: int = 100, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Indices j [N]: x1[j[i]] is the data point paired with noise x0[i], drawn from
    row i of the entropic OT plan between the two batches (`sinkhorn_log_plan`);
    with `seed` (a stateless [2] seed) the draw is deterministic.

    Example:
        >>> import tensorflow as tf
        >>> x0 = tf.constant([[0.0], [10.0]]); x1 = tf.constant([[9.0], [1.0]])
        >>> sinkhorn_pairing(x0, x1, seed=tf.constant([0, 0])).numpy().tolist()
        [1, 0]
    """
    log_plan = tf.stop_gradient(sinkhorn_log_plan(squared_distances(x0, x1), regularization,
                                                  iterations))
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return tf.reshape(tf.random.stateless_categorical(log_plan, 1, seed, dtype=tf.int32), [-1])
