"""Cells f(z, x) for `DEQBlock`: `TanhCell` (dense, a contraction by construction)
and `ConvDEQCell` (the single-stream residual cell of MDEQ, Bai et al. 2020).

Example:
    >>> import tensorflow as tf
    >>> cell = ConvDEQCell(filters=8, groups=4)
    >>> cell(tf.zeros((2, 7, 7, 8)), tf.ones((2, 7, 7, 8))).shape
    TensorShape([2, 7, 7, 8])
"""
from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="ode_zoo")
class TanhCell(keras.layers.Layer):
    """f(z, x) = tanh(z W + x U + b) with W scaled to spectral norm `w_scale`.

    Example:
        >>> import tensorflow as tf
        >>> TanhCell()(tf.zeros((2, 3)), tf.ones((2, 3))).shape
        TensorShape([2, 3])
    """

    def __init__(self, w_scale: float = 0.5, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.w_scale = float(w_scale)
        self.seed = int(seed)

    def build(self, z_shape: tuple, x_shape: tuple) -> None:
        n, m = z_shape[-1], x_shape[-1]
        w = np.random.default_rng(self.seed).standard_normal((n, n))
        w *= self.w_scale / np.linalg.norm(w, 2)
        self.w = self.add_weight(name="w", shape=(n, n),
                                 initializer=keras.initializers.Constant(w))
        self.u = self.add_weight(name="u", shape=(m, n),
                                 initializer=keras.initializers.GlorotUniform(self.seed + 1))
        self.b = self.add_weight(name="b", shape=(n,), initializer="zeros")

    def call(self, z: Any, x: Any) -> Any:
        return ops.tanh(ops.matmul(z, self.w) + ops.matmul(x, self.u) + self.b)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"w_scale": self.w_scale, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class ConvDEQCell(keras.layers.Layer):
    """MDEQ's residual cell on feature maps [N, H, W, C]:

        h = GN(ReLU(conv₁(z)));  y = GN(conv₂(h) + x);  f(z, x) = GN(ReLU(y + z))

    The input injection x has z's shape (the model's stem computes it once).
    Convolutions have no bias (GroupNorm follows each) and start from small
    weights (normal, std `init_scale`) so that f starts close to a contraction,
    as in MDEQ, and the solver converges in a few iterations from the first step.

    Args:
      filters: channels of z and x.
      hidden_filters: channels of h (default `filters`).
      groups: GroupNormalization groups (must divide both channel counts).
      kernel_size: size of both convolutions.
      init_scale: std of the convolution kernels' normal initializer.
      seed: seed of the initializers.

    Example:
        >>> import tensorflow as tf
        >>> cell = ConvDEQCell(filters=4, hidden_filters=8, groups=2)
        >>> cell(tf.zeros((1, 5, 5, 4)), tf.ones((1, 5, 5, 4))).shape
        TensorShape([1, 5, 5, 4])
    """

    def __init__(self, filters: int, hidden_filters: Optional[int] = None, groups: int = 8,
                 kernel_size: int = 3, init_scale: float = 0.01, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_filters = int(hidden_filters or filters)
        self.groups, self.kernel_size = int(groups), int(kernel_size)
        for channels in (self.filters, self.hidden_filters):
            if channels % self.groups:
                raise ValueError(f"groups={self.groups} must divide the channel counts "
                                 f"filters={self.filters} and "
                                 f"hidden_filters={self.hidden_filters}.")
        self.init_scale, self.seed = float(init_scale), int(seed)

        def conv(channels: int, index: int) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(
                channels, self.kernel_size, padding="same", use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(0.0, self.init_scale,
                                                                   seed=self.seed + index),
                name=f"conv_{index}")

        self.conv_1, self.conv_2 = conv(self.hidden_filters, 1), conv(self.filters, 2)
        self.norm_1, self.norm_2, self.norm_3 = (
            keras.layers.GroupNormalization(self.groups, name=f"norm_{i}") for i in (1, 2, 3))

    def build(self, z_shape: tuple, x_shape: tuple) -> None:
        if tuple(z_shape) != tuple(x_shape) or z_shape[-1] != self.filters:
            raise ValueError(f"ConvDEQCell needs z and x of one shape [N, H, W, {self.filters}], "
                             f"got z {tuple(z_shape)} and x {tuple(x_shape)}.")
        hidden_shape = (*z_shape[:-1], self.hidden_filters)
        self.conv_1.build(z_shape)
        self.norm_1.build(hidden_shape)
        self.conv_2.build(hidden_shape)
        self.norm_2.build(z_shape)
        self.norm_3.build(z_shape)

    def call(self, z: Any, x: Any) -> Any:
        h = self.norm_1(ops.relu(self.conv_1(z)))
        y = self.norm_2(self.conv_2(h) + x)
        return self.norm_3(ops.relu(y + z))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(filters=self.filters, hidden_filters=self.hidden_filters,
                      groups=self.groups, kernel_size=self.kernel_size,
                      init_scale=self.init_scale, seed=self.seed)
        return config
