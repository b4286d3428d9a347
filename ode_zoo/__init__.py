"""ode_zoo: continuous-depth models for Keras 3 / TensorFlow.

Example:
    >>> import tensorflow as tf
    >>> import ode_zoo
    >>> ys = ode_zoo.odeint(lambda t, y: -y, tf.ones([3]), tf.constant([0.0, 1.0]))
    >>> ys.shape
    TensorShape([2, 3])
    >>> result = ode_zoo.fixed_point(lambda z: 0.5 * z + 1.0, tf.zeros([2, 1]))
    >>> result.z.numpy().round(3).ravel().tolist()
    [2.0, 2.0]
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False)   # a compiled Keras model
"""
__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) buries the CLI's
# output; a user's own setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ode_zoo.solvers import (MaxStepsExceededError, NonFiniteStateError, ODESolverError,
                             SolveStats, StatsRecorder, StepSizeTooSmallError, odeint)
from ode_zoo.equilibrium import FixedPointResult, fixed_point
from ode_zoo.zoo import export, list_models, load

__all__ = ["__version__", "odeint", "SolveStats", "StatsRecorder", "ODESolverError",
           "MaxStepsExceededError", "StepSizeTooSmallError", "NonFiniteStateError",
           "fixed_point", "FixedPointResult", "load", "list_models", "export"]
