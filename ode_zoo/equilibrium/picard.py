"""Picard (fixed-point) iteration with damping α: z ← (1 − α) z + α f(z).

Converges linearly when f is a contraction; the rate is f's Lipschitz constant
(for α = 1). The baseline the accelerated methods are measured against.

Example:
    >>> import tensorflow as tf
    >>> picard = Picard(damping=0.5)
    >>> picard.propose(tf.zeros([1, 2]), tf.ones([1, 2]), picard.init(None, None)).numpy()
    array([[0.5, 0.5]], dtype=float32)
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Picard:
    """Damped Picard iteration; `damping` α in (0, 1], 1 is the plain iteration."""

    damping: float = 1.0
    restarts = False

    def init(self, z: tf.Tensor, fz: tf.Tensor) -> Tuple:
        """No state."""
        return ()

    def propose(self, z: tf.Tensor, fz: tf.Tensor, state: Tuple) -> tf.Tensor:
        """The next iterate, [batch, n]."""
        if self.damping == 1.0:
            return fz
        return (1.0 - self.damping) * z + self.damping * fz

    def update(self, state: Tuple, z: tf.Tensor, fz: tf.Tensor, z_new: tf.Tensor,
               fz_new: tf.Tensor, restart: tf.Tensor) -> Tuple:
        """No state."""
        return ()
