"""Time-conditioned vector-field layers: `call(t, y)` returns dy/dt.

Every layer here takes a scalar time `t` and a state `y` and is built with
`build(t_shape, y_shape)`, so it can be passed to `ode_zoo.solvers.odeint` or
wrapped in `ode_zoo.layers.ODEBlock`.

The layers compute in their dtype policy's compute dtype and return dy/dt in
`y`'s dtype. Called as `layer(t, y)`, Keras has already cast `t` and `y` to the
compute dtype; `odeint` evaluates the layer through `stateless_call`, which
skips that cast, so `call` does it itself and casts the result back to the
solver's state dtype. For float64 solves, make the layer with `dtype="float64"`.

Example:
    >>> import tensorflow as tf
    >>> field = DenseVectorField(hidden_units=(16,))
    >>> field(tf.constant(0.5), tf.zeros((4, 3))).shape
    TensorShape([4, 3])
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops


def _compute_inputs(layer: keras.layers.Layer, t: Any, y: Any) -> tuple[Any, Any]:
    """`t` and `y` cast to the layer's compute dtype."""
    return ops.cast(t, layer.compute_dtype), ops.cast(y, layer.compute_dtype)


@keras.saving.register_keras_serializable(package="ode_zoo")
class ConcatSquashDense(keras.layers.Layer):
    """FFJORD's ConcatSquash linear layer on the last axis of `y`.

    `out = activation((y @ kernel + bias) * sigmoid(t * gate_kernel + gate_bias)
    + t * hyper_kernel)`: a dense layer whose units are gated and shifted by the
    time, with a per-unit gate and a per-unit (bias-free) hyper-bias.

    Args:
      units: output width.
      activation: applied to the result (name or callable); None is linear.

    Example:
        >>> import tensorflow as tf
        >>> layer = ConcatSquashDense(5, activation="tanh")
        >>> layer(tf.constant(1.0), tf.ones((2, 3))).shape
        TensorShape([2, 5])
    """

    def __init__(self, units: int, activation: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f"units must be a positive integer, got {units!r}.")
        self.units = int(units)
        self.activation = keras.activations.get(activation)

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        input_dim = y_shape[-1]
        if input_dim is None:
            raise ValueError(f"The last axis of y must be known, got y shape {y_shape}.")
        self.kernel = self.add_weight(
            name="kernel", shape=(input_dim, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.gate_kernel = self.add_weight(
            name="gate_kernel", shape=(self.units,), initializer="glorot_uniform")
        self.gate_bias = self.add_weight(
            name="gate_bias", shape=(self.units,), initializer="zeros")
        self.hyper_kernel = self.add_weight(
            name="hyper_kernel", shape=(self.units,), initializer="glorot_uniform")

    def call(self, t: Any, y: Any) -> Any:
        t_c, y_c = _compute_inputs(self, t, y)
        gate = ops.sigmoid(t_c * self.gate_kernel + self.gate_bias)
        out = (ops.matmul(y_c, self.kernel) + self.bias) * gate + t_c * self.hyper_kernel
        return ops.cast(self.activation(out), y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return tuple(y_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"units": self.units, "activation": keras.activations.serialize(self.activation)})
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class ConcatConv2D(keras.layers.Layer):
    """A 2-D convolution of `y` (NHWC) with the time appended as a constant channel.

    Args:
      filters: output channels.
      kernel_size: convolution window (int or pair).
      strides: convolution strides (int or pair).
      padding: "same" or "valid".
      transpose: use `Conv2DTranspose` (upsampling by `strides`) instead of `Conv2D`.

    Example:
        >>> import tensorflow as tf
        >>> layer = ConcatConv2D(8, strides=2)
        >>> layer(tf.constant(0.0), tf.zeros((2, 6, 6, 3))).shape
        TensorShape([2, 3, 3, 8])
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int] = 3,
        strides: int | tuple[int, int] = 1,
        padding: str = "same",
        transpose: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.transpose = bool(transpose)
        conv_class = keras.layers.Conv2DTranspose if self.transpose else keras.layers.Conv2D
        self.conv = conv_class(
            filters, kernel_size, strides=strides, padding=padding,
            dtype=self.dtype_policy, name="conv")

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        if len(y_shape) != 4:
            raise ValueError(f"ConcatConv2D expects y of shape (batch, H, W, C), got {y_shape}.")
        self.conv.build(tuple(y_shape[:-1]) + (y_shape[-1] + 1,))

    def call(self, t: Any, y: Any) -> Any:
        t_c, y_c = _compute_inputs(self, t, y)
        time_channel = ops.ones_like(y_c[..., :1]) * t_c
        out = self.conv(ops.concatenate([y_c, time_channel], axis=-1))
        return ops.cast(out, y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return tuple(self.conv.compute_output_shape(tuple(y_shape[:-1]) + (y_shape[-1] + 1,)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "transpose": self.transpose,
        })
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class DenseVectorField(keras.layers.Layer):
    """An MLP vector field: `ConcatSquashDense` layers, `activation` between them.

    Hidden layers have `hidden_units` widths; the last layer is linear with
    `output_dim` units (y's last dimension when None, as an ODE needs).

    Args:
      hidden_units: widths of the hidden layers (may be empty: one linear layer).
      output_dim: width of dy/dt; None means y's last dimension.
      activation: nonlinearity after each hidden layer.

    Example:
        >>> import tensorflow as tf
        >>> field = DenseVectorField(hidden_units=(8, 8))
        >>> field(tf.constant(0.0), tf.ones((5, 2))).shape
        TensorShape([5, 2])
        >>> len(field.squash_layers)
        3
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (64, 64),
        output_dim: int | None = None,
        activation: Any = "tanh",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_units = tuple(int(units) for units in hidden_units)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.activation = keras.activations.get(activation)

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        output_dim = y_shape[-1] if self.output_dim is None else self.output_dim
        if output_dim is None:
            raise ValueError(f"The last axis of y must be known, got y shape {y_shape}.")
        widths = self.hidden_units + (output_dim,)
        activations = [self.activation] * len(self.hidden_units) + [None]
        self.squash_layers = [
            ConcatSquashDense(units, activation=act, dtype=self.dtype_policy,
                              name=f"concat_squash_{i}")
            for i, (units, act) in enumerate(zip(widths, activations))
        ]
        shape = tuple(y_shape)
        for layer in self.squash_layers:
            layer.build(t_shape, shape)
            shape = layer.compute_output_shape(t_shape, shape)

    def call(self, t: Any, y: Any) -> Any:
        t_c, h = _compute_inputs(self, t, y)
        for layer in self.squash_layers:
            h = layer(t_c, h)
        return ops.cast(h, y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        output_dim = y_shape[-1] if self.output_dim is None else self.output_dim
        return tuple(y_shape[:-1]) + (output_dim,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "hidden_units": list(self.hidden_units),
            "output_dim": self.output_dim,
            "activation": keras.activations.serialize(self.activation),
        })
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class ConvVectorField(keras.layers.Layer):
    """The Neural ODE paper's convolutional vector field on NHWC feature maps:
    GroupNorm → ReLU → ConcatConv2D → GroupNorm → ReLU → ConcatConv2D → GroupNorm.

    Args:
      filters: channels of the state (kept by the field).
      groups: groups of each GroupNormalization (must divide `filters`).

    Example:
        >>> import tensorflow as tf
        >>> field = ConvVectorField(filters=8, groups=4)
        >>> field(tf.constant(0.0), tf.zeros((2, 7, 7, 8))).shape
        TensorShape([2, 7, 7, 8])
    """

    def __init__(self, filters: int = 64, groups: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if filters % groups:
            raise ValueError(f"groups={groups} must divide filters={filters}.")
        self.filters = int(filters)
        self.groups = int(groups)
        self.norms = [keras.layers.GroupNormalization(groups, dtype=self.dtype_policy,
                                                      name=f"norm_{i}") for i in range(3)]
        self.convs = [ConcatConv2D(filters, 3, dtype=self.dtype_policy, name=f"conv_{i}")
                      for i in range(2)]

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        if y_shape[-1] != self.filters:
            raise ValueError(f"ConvVectorField with filters={self.filters} needs a state with "
                             f"{self.filters} channels, got shape {y_shape}.")
        for norm in self.norms:
            norm.build(y_shape)
        for conv in self.convs:
            conv.build(t_shape, y_shape)

    def call(self, t: Any, y: Any) -> Any:
        t_c, h = _compute_inputs(self, t, y)
        h = self.norms[0](h)
        for conv, norm in zip(self.convs, self.norms[1:]):
            h = norm(conv(t_c, ops.relu(h)))
        return ops.cast(h, y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return tuple(y_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"filters": self.filters, "groups": self.groups})
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class FlatImageVectorField(keras.layers.Layer):
    """FFJORD's convolutional vector field for flows on flattened images.

    y [N, H·W·C] is reshaped to [N, H, W, C] and passed through 3×3
    `ConcatConv2D` layers (the time appended as a channel to each) with
    `hidden_filters` channels and `activation` after each, then a last
    `ConcatConv2D` back to C channels; the result is flattened again. Examples
    are computed independently (no batch statistics), as trace estimators need.
    The last convolution starts at zero: a new field is 0 and its flow the identity.

    Args:
      image_shape: (H, W, C) of the images the flat states hold.
      hidden_filters: channels of the hidden convolutions (may be empty).
      activation: nonlinearity after each hidden convolution (FFJORD: softplus).

    Example:
        >>> import tensorflow as tf
        >>> field = FlatImageVectorField((4, 4, 2), hidden_filters=(8,))
        >>> field(tf.constant(0.5), tf.ones((3, 32))).shape
        TensorShape([3, 32])
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        hidden_filters: Sequence[int] = (64, 64, 64),
        activation: Any = "softplus",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(image_shape) != 3 or any(int(d) != d or d < 1 for d in image_shape):
            raise ValueError(f"image_shape must be three positive integers (H, W, C), got "
                             f"{tuple(image_shape)}.")
        if any(int(f) != f or f < 1 for f in hidden_filters):
            raise ValueError(f"hidden_filters must be positive integers, got "
                             f"{tuple(hidden_filters)}.")
        self.image_shape = tuple(int(d) for d in image_shape)
        self.hidden_filters = tuple(int(f) for f in hidden_filters)
        self.activation = keras.activations.get(activation)
        self.dim = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        filters = self.hidden_filters + (self.image_shape[-1],)
        self.convs = [ConcatConv2D(f, 3, dtype=self.dtype_policy, name=f"concat_conv_{i}")
                      for i, f in enumerate(filters)]

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        if y_shape[-1] != self.dim:
            raise ValueError(f"FlatImageVectorField for images {self.image_shape} needs flat "
                             f"states [N, {self.dim}], got shape {tuple(y_shape)}.")
        shape = (y_shape[0],) + self.image_shape
        for conv in self.convs:
            conv.build(t_shape, shape)
            shape = conv.compute_output_shape(t_shape, shape)
        last = self.convs[-1].conv
        last.kernel.assign(ops.zeros_like(last.kernel))

    def call(self, t: Any, y: Any) -> Any:
        t_c, y_c = _compute_inputs(self, t, y)
        h = ops.reshape(y_c, (-1,) + self.image_shape)
        for conv in self.convs[:-1]:
            h = self.activation(conv(t_c, h))
        h = self.convs[-1](t_c, h)
        return ops.cast(ops.reshape(h, (-1, self.dim)), y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return tuple(y_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "image_shape": list(self.image_shape),
            "hidden_filters": list(self.hidden_filters),
            "activation": keras.activations.serialize(self.activation),
        })
        return config


@keras.saving.register_keras_serializable(package="ode_zoo")
class AutonomousDenseField(keras.layers.Layer):
    """An autonomous MLP vector field dy/dt = f(y): `t` is ignored, so a solve may
    rescale time (as the ODE-RNN does, integrating each row over its own interval).

    Dense layers of `hidden_units` widths with `activation` after each, then a
    linear layer back to y's width (with no hidden units, f(y) = y·W + b).

    Args:
      hidden_units: widths of the hidden layers (may be empty: one linear layer).
      activation: nonlinearity after each hidden layer.

    Example:
        >>> import tensorflow as tf
        >>> field = AutonomousDenseField(hidden_units=(8,))
        >>> field(tf.constant(0.0), tf.ones((5, 3))).shape
        TensorShape([5, 3])
        >>> bool(tf.reduce_all(field(tf.constant(0.0), tf.ones((1, 3)))
        ...                    == field(tf.constant(9.0), tf.ones((1, 3)))))
        True
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 64), activation: Any = "tanh",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if any(int(u) != u or u < 1 for u in hidden_units):
            raise ValueError(f"hidden_units must be positive integers, got "
                             f"{tuple(hidden_units)}.")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = keras.activations.get(activation)

    def build(self, t_shape: tuple, y_shape: tuple) -> None:
        if y_shape[-1] is None:
            raise ValueError(f"The last axis of y must be known, got y shape {y_shape}.")
        widths = self.hidden_units + (y_shape[-1],)
        self.dense_layers = [keras.layers.Dense(units, dtype=self.dtype_policy, name=f"dense_{i}")
                             for i, units in enumerate(widths)]
        shape = tuple(y_shape)
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, t: Any, y: Any) -> Any:
        _, h = _compute_inputs(self, t, y)
        for layer in self.dense_layers[:-1]:
            h = self.activation(layer(h))
        return ops.cast(self.dense_layers[-1](h), y.dtype)

    def compute_output_shape(self, t_shape: tuple, y_shape: tuple) -> tuple:
        return tuple(y_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"hidden_units": list(self.hidden_units),
                       "activation": keras.activations.serialize(self.activation)})
        return config
