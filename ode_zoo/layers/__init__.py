"""Keras layers: `ODEBlock` with time-conditioned vector fields, `DEQBlock` with its cells.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.layers import DenseVectorField, ODEBlock
    >>> ODEBlock(DenseVectorField(hidden_units=(8,)))(tf.ones((2, 3))).shape
    TensorShape([2, 3])
"""

from ode_zoo.layers.deq_block import DEQBlock
from ode_zoo.layers.deq_cells import ConvDEQCell, TanhCell
from ode_zoo.layers.keras_field import KerasField
from ode_zoo.layers.ode_block import ODEBlock
from ode_zoo.layers.unet import UNetVectorField
from ode_zoo.layers.vector_fields import (ConcatConv2D, ConcatSquashDense, ConvVectorField,
                                         DenseVectorField, FlatImageVectorField)

__all__ = ["ConcatConv2D", "ConcatSquashDense", "ConvDEQCell", "ConvVectorField", "DEQBlock",
           "DenseVectorField", "FlatImageVectorField", "KerasField", "ODEBlock", "TanhCell",
           "UNetVectorField"]
