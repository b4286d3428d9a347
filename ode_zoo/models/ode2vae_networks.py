"""ODE2VAE's encoders and decoders (Yildiz et al. 2019), as built Keras
`Sequential` networks: convolutional for images, MLPs for vectors (mocap).

An encoder maps its input to the mean and log-variance of a diagonal Gaussian,
concatenated ([N, 2·latent_dim]); a decoder maps a position s [N, latent_dim] to
Bernoulli logits of an image or the mean of a vector.

Example:
    >>> import tensorflow as tf
    >>> image_encoder((28, 28), 3, latent_dim=5, filters=4)(tf.zeros((2, 28, 28, 3))).shape
    TensorShape([2, 10])
    >>> image_decoder((28, 28, 1), latent_dim=5, filters=4)(tf.zeros((2, 5))).shape
    TensorShape([2, 28, 28, 1])
"""
from __future__ import annotations

from typing import Sequence

import keras


def image_encoder(image_size: Sequence[int], channels: int, latent_dim: int, filters: int = 8,
                  kernel_size: int = 5, name: str = "image_encoder") -> keras.Sequential:
    """Four stride-2 convolutions (filters ×1, ×2, ×4, ×8, ReLU), then a dense layer
    to [mean, log-variance] of size 2·latent_dim, on images [N, H, W, channels]."""
    convs = [keras.layers.Conv2D(filters * 2 ** i, kernel_size, strides=2, padding="same",
                                 activation="relu", name=f"conv_{i}") for i in range(4)]
    return keras.Sequential(
        [keras.Input((*image_size, channels)), *convs, keras.layers.Flatten(),
         keras.layers.Dense(2 * latent_dim, name="gaussian")], name=name)


def image_decoder(image_shape: Sequence[int], latent_dim: int, filters: int = 16,
                  kernel_size: int = 5, name: str = "image_decoder") -> keras.Sequential:
    """A dense layer to a (H/4)×(W/4)×4·filters map, two stride-2 transposed
    convolutions (2·filters, filters; ReLU) and a convolution to per-pixel logits."""
    height, width, channels = image_shape
    return keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(height // 4 * width // 4 * 4 * filters, activation="relu",
                           name="project"),
        keras.layers.Reshape((height // 4, width // 4, 4 * filters)),
        keras.layers.Conv2DTranspose(2 * filters, kernel_size, strides=2, padding="same",
                                     activation="relu", name="deconv_0"),
        keras.layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same",
                                     activation="relu", name="deconv_1"),
        keras.layers.Conv2D(channels, kernel_size, padding="same", name="logits"),
    ], name=name)


def dense_network(input_dim: int, output_dim: int, hidden_units: Sequence[int],
                  activation: str = "tanh", name: str = "dense_network") -> keras.Sequential:
    """An MLP: the vector encoder (output 2·latent_dim) and decoder (output D)."""
    hidden = [keras.layers.Dense(units, activation=activation, name=f"hidden_{i}")
              for i, units in enumerate(hidden_units)]
    return keras.Sequential([keras.Input((input_dim,)), *hidden,
                             keras.layers.Dense(output_dim, name="output")], name=name)
