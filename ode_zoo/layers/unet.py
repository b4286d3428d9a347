"""`UNetVectorField`: a time-conditioned U-Net vector field on flattened images,
sized for CPU (the field of flow-matching image flows).

`call(t, y)` takes a time `t` (a scalar, as an ODE solver gives it, or one per
example [N], as flow-matching training draws them) and flattened images
y [N, H·W·C], and returns dy/dt of y's shape. Inside: sinusoidal time features
through a two-layer MLP; a 3×3 stem; per resolution `res_blocks` residual blocks
(GroupNorm, swish, 3×3 conv, plus a time projection) and a stride-2 downsampling;
a middle block; the mirror path up with skip connections and nearest-neighbour
upsampling; GroupNorm, swish and a zero-initialized 3×3 convolution out (a new
field is zero). Group normalization is per example, so the field of one image
never depends on the others in its batch (its Jacobian trace is its own).

Example:
    >>> import tensorflow as tf
    >>> field = UNetVectorField(image_shape=(8, 8, 1), channels=8, channel_multipliers=(1, 2),
    ...                         groups=4)
    >>> field(tf.constant(0.5), tf.ones((2, 64))).shape
    TensorShape([2, 64])
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import keras
from keras import ops


def _sinusoidal_features(t: Any, size: int) -> Any:
    """[N, size] sin/cos features of times t [N] at geometric frequencies 1..1000."""
    half = size // 2
    frequencies = ops.exp(ops.arange(half, dtype="float32") * (math.log(1000.0) / max(half - 1, 1)))
    angles = ops.cast(t, "float32")[:, None] * frequencies[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


class _ResidualBlock(keras.layers.Layer):
    """GroupNorm–swish–conv twice with a time projection between, plus a skip."""

    def __init__(self, filters: int, groups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.norm_in = keras.layers.GroupNormalization(groups, name="norm_in")
        self.conv_in = keras.layers.Conv2D(filters, 3, padding="same", name="conv_in")
        self.time = keras.layers.Dense(filters, name="time")
        self.norm_out = keras.layers.GroupNormalization(groups, name="norm_out")
        self.conv_out = keras.layers.Conv2D(filters, 3, padding="same", name="conv_out")
        self.skip = None

    def build(self, x_shape: tuple, embedding_shape: tuple) -> None:
        inner = (*x_shape[:-1], self.filters)
        self.norm_in.build(x_shape)
        self.conv_in.build(x_shape)
        self.time.build(embedding_shape)
        self.norm_out.build(inner)
        self.conv_out.build(inner)
        if x_shape[-1] != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, name="skip")
            self.skip.build(x_shape)

    def call(self, x: Any, embedding: Any) -> Any:
        h = self.conv_in(ops.silu(self.norm_in(x)))
        h = h + self.time(embedding)[:, None, None, :]
        h = self.conv_out(ops.silu(self.norm_out(h)))
        return h + (x if self.skip is None else self.skip(x))


@keras.saving.register_keras_serializable(package="ode_zoo")
class UNetVectorField(keras.layers.Layer):
    """A time-conditioned U-Net on flattened images [N, H·W·C].

    Args:
      image_shape: (H, W, C); H and W divisible by 2**(len(channel_multipliers) − 1).
      channels: width of the first resolution.
      channel_multipliers: width of each resolution, in multiples of `channels`.
      res_blocks: residual blocks per resolution on the way down (one more up).
      groups: GroupNorm groups (divides every width).
      time_features: size of the sinusoidal time features.
    """

    def __init__(self, image_shape: Sequence[int] = (28, 28, 1), channels: int = 32,
                 channel_multipliers: Sequence[int] = (1, 2, 2), res_blocks: int = 1,
                 groups: int = 8, time_features: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.channels, self.res_blocks = int(channels), int(res_blocks)
        self.channel_multipliers = tuple(int(m) for m in channel_multipliers)
        self.groups, self.time_features = int(groups), int(time_features)
        levels = len(self.channel_multipliers)
        height, width, depth = self.image_shape
        if height % 2 ** (levels - 1) or width % 2 ** (levels - 1):
            raise ValueError(f"image_shape {self.image_shape}: H and W must be divisible by "
                             f"2**{levels - 1} for {levels} resolutions.")
        widths = [self.channels * m for m in self.channel_multipliers]
        if any(w % self.groups for w in widths):
            raise ValueError(f"groups={self.groups} must divide every width {widths}.")
        self.dim = height * width * depth
        embedding = 4 * self.channels
        self.time_mlp = [keras.layers.Dense(embedding, name="time_dense_0"),
                         keras.layers.Dense(embedding, name="time_dense_1")]
        self.stem = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")
        self.down = [[_ResidualBlock(w, self.groups, name=f"down_{i}_{j}")
                      for j in range(self.res_blocks)] for i, w in enumerate(widths)]
        self.downsample = [keras.layers.Conv2D(w, 3, strides=2, padding="same",
                                               name=f"downsample_{i}")
                           for i, w in enumerate(widths[:-1])]
        self.middle = _ResidualBlock(widths[-1], self.groups, name="middle")
        self.up = [[_ResidualBlock(w, self.groups, name=f"up_{i}_{j}")
                    for j in range(self.res_blocks + 1)] for i, w in enumerate(widths)]
        self.upsample = [keras.layers.Conv2D(w, 3, padding="same", name=f"upsample_{i}")
                         for i, w in enumerate(widths[1:])]
        self.head_norm = keras.layers.GroupNormalization(self.groups, name="head_norm")
        self.head = keras.layers.Conv2D(depth, 3, padding="same", kernel_initializer="zeros",
                                        name="head")

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        embedding = (None, 4 * self.channels)
        self.time_mlp[0].build((None, self.time_features))
        self.time_mlp[1].build(embedding)
        height, width, depth = self.image_shape
        shape = (None, height, width, depth)
        self.stem.build(shape)
        shape = (None, height, width, self.channels * self.channel_multipliers[0])
        skips = [shape]
        for i, blocks in enumerate(self.down):
            for block in blocks:
                block.build(shape, embedding)
                shape = (*shape[:3], block.filters)
                skips.append(shape)
            if i < len(self.downsample):
                self.downsample[i].build(shape)
                shape = (None, shape[1] // 2, shape[2] // 2, self.downsample[i].filters)
                skips.append(shape)
        self.middle.build(shape, embedding)
        for i in reversed(range(len(self.up))):
            for block in self.up[i]:
                block.build((*shape[:3], shape[3] + skips.pop()[3]), embedding)
                shape = (*shape[:3], block.filters)
            if i > 0:
                shape = (None, shape[1] * 2, shape[2] * 2, shape[3])
                self.upsample[i - 1].build(shape)
                shape = (*shape[:3], self.upsample[i - 1].filters)
        self.head_norm.build(shape)
        self.head.build(shape)

    def call(self, t: Any, y: Any) -> Any:
        dtype = y.dtype
        x = ops.reshape(ops.cast(y, self.compute_dtype), (-1, *self.image_shape))
        t = ops.cast(t, "float32")
        t = ops.broadcast_to(ops.reshape(t, (-1,)), (ops.shape(x)[0],))
        embedding = _sinusoidal_features(t, self.time_features)
        embedding = self.time_mlp[1](ops.silu(self.time_mlp[0](embedding)))
        embedding = ops.cast(embedding, self.compute_dtype)
        h = self.stem(x)
        skips = [h]
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, embedding)
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.middle(h, embedding)
        for i in reversed(range(len(self.up))):
            for block in self.up[i]:
                h = block(ops.concatenate([h, skips.pop()], axis=-1), embedding)
            if i > 0:
                h = self.upsample[i - 1](ops.repeat(ops.repeat(h, 2, axis=1), 2, axis=2))
        out = self.head(ops.silu(self.head_norm(h)))
        return ops.cast(ops.reshape(out, (-1, self.dim)), dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return y_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(image_shape=list(self.image_shape), channels=self.channels,
                      channel_multipliers=list(self.channel_multipliers),
                      res_blocks=self.res_blocks, groups=self.groups,
                      time_features=self.time_features)
        return config
