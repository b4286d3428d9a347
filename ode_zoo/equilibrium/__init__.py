"""Fixed-point solvers in pure TensorFlow (no Keras) for deep equilibrium models:
`fixed_point` finds z* = f(z*) per batch element with Broyden's method, Anderson
acceleration or Picard iteration.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.equilibrium import fixed_point
    >>> result = fixed_point(lambda z: 0.5 * z + 1.0, tf.zeros([3, 2]), method="anderson")
    >>> result.z.shape, bool(tf.reduce_all(result.converged))
    (TensorShape([3, 2]), True)
"""
from ode_zoo.equilibrium.anderson import Anderson
from ode_zoo.equilibrium.broyden import Broyden
from ode_zoo.equilibrium.implicit import implicit_step
from ode_zoo.equilibrium.picard import Picard
from ode_zoo.equilibrium.result import FixedPointResult
from ode_zoo.equilibrium.solve import METHODS, STOP_MODES, fixed_point

__all__ = ["fixed_point", "implicit_step", "FixedPointResult", "METHODS", "STOP_MODES", "Broyden", "Anderson",
           "Picard"]
