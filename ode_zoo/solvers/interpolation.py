"""Dense output inside an accepted step, so output times never shorten steps.

Every adaptive method carries stage-weight polynomials b_i(θ) with
y(t0 + θh) = y0 + h Σ_i b_i(θ) k_i. They come from the method's own continuous
extension where one is published (tsit5), otherwise from Hermite interpolation
through y0, y1, f0, f1 — plus the half-step value where the method gives one
(dopri5: fourth order) — written in terms of the stages (FSAL methods only).

Example:
    >>> import numpy as np
    >>> from ode_zoo.solvers.tableaus import DOPRI5
    >>> np.allclose(stage_weights(1.0, DOPRI5.dense), DOPRI5.b)
    True
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

DenseMatrix = Tuple[Tuple[float, ...], ...]  # [stage][power-1]: coefficient of θ^power


def _hermite_basis(with_mid: bool) -> np.ndarray:
    """Columns: monomial coefficients (θ^0..θ^d) of the weights of
    [y0, y1, h·f0, h·f1(, y_mid)] in the interpolating polynomial."""
    rows = [[1, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0], [0, 1, 2, 3]]  # p(0), p(1), p'(0), p'(1)
    if with_mid:
        rows = [r + [d] for r, d in zip(rows, [0, 1, 0, 4])] + [[1, .5, .25, .125, .0625]]
    return np.linalg.inv(np.array(rows, dtype=np.float64))


def hermite_dense(b: Sequence[float], b_mid: Optional[Sequence[float]] = None) -> DenseMatrix:
    """Stage-weight polynomials of Hermite interpolation for an FSAL method with
    solution weights `b` (and half-step weights `b_mid`)."""
    basis = _hermite_basis(b_mid is not None)
    num_stages = len(b)
    # The weight of y0 cancels against y1 = y0 + hΣb k and y_mid = y0 + hΣb_mid k.
    weights = np.outer(np.asarray(b, np.float64), basis[:, 1])
    weights[0] += basis[:, 2]
    weights[num_stages - 1] += basis[:, 3]
    if b_mid is not None:
        weights += np.outer(np.asarray(b_mid, np.float64), basis[:, 4])
    return tuple(tuple(row[1:]) for row in weights)


def polynomial_dense(factors: Sequence[Sequence[Sequence[float]]]) -> DenseMatrix:
    """Stage-weight polynomials given, per stage, as a product of polynomial
    factors (coefficients in increasing powers)."""
    polys = []
    for stage_factors in factors:
        poly = np.array([1.0])
        for factor in stage_factors:
            poly = np.polynomial.polynomial.polymul(poly, factor)
        polys.append(poly)
    degree = max(len(p) for p in polys)
    return tuple(tuple(np.pad(p, (0, degree - len(p)))[1:]) for p in polys)


def stage_weights(theta, dense: DenseMatrix):
    """b_i(θ) for every stage (numpy or TensorFlow θ)."""
    matrix = np.array(dense, dtype=np.float64)
    if isinstance(theta, (float, int, np.floating)):
        return matrix @ theta ** np.arange(1, matrix.shape[1] + 1)
    powers = tf.stack([theta ** p for p in range(1, matrix.shape[1] + 1)])
    return tf.linalg.matvec(tf.constant(matrix, theta.dtype), powers)


def dense_output(theta: tf.Tensor, y0: tf.Tensor, h: tf.Tensor, stages: Sequence[tf.Tensor],
                 dense: DenseMatrix) -> tf.Tensor:
    """The solution at t0 + θh, 0 <= θ <= 1, inside one step."""
    weights = stage_weights(theta, dense)
    return y0 + h * tf.add_n([weights[i] * k for i, k in enumerate(stages)])
