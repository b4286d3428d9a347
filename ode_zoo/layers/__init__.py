"""Keras layers: `ODEBlock` with time-conditioned vector fields, `DEQBlock` with its cells,
`ODERNN` and `ODETrajectory` (irregular series) with an autonomous field.

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
from ode_zoo.layers.ode_rnn import ODERNN
from ode_zoo.layers.ode_trajectory import ODETrajectory
from ode_zoo.layers.unet import UNetVectorField
from ode_zoo.layers.vector_fields import (AutonomousDenseField, ConcatConv2D, ConcatSquashDense,
                                         ConvVectorField, DenseVectorField, FlatImageVectorField)

__all__ = ["AutonomousDenseField", "ConcatConv2D", "ConcatSquashDense", "ConvDEQCell",
           "ConvVectorField", "DEQBlock", "DenseVectorField", "FlatImageVectorField", "KerasField",
           "ODEBlock", "ODERNN", "ODETrajectory", "TanhCell", "UNetVectorField"]
