"""Normalizing flows: the `FFJORD` bijector (a continuous normalizing flow, with
RNODE regularizers) and the Jacobian trace estimators it integrates.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo.flows import FFJORD
    >>> FFJORD(lambda t, z: tf.zeros_like(z)).forward(tf.ones([1, 2])).numpy().tolist()
    [[1.0, 1.0]]
"""
from ode_zoo.flows.ffjord import FFJORD, FlowResult
from ode_zoo.flows.multiscale import MultiscaleFlow
from ode_zoo.flows.trace_estimators import (TRACE_ESTIMATORS, TraceEstimate, TraceEstimator,
                                            exact_trace, hutchinson_trace, stateless_seed)

__all__ = ["FFJORD", "FlowResult", "MultiscaleFlow", "TRACE_ESTIMATORS", "TraceEstimate",
           "TraceEstimator", "exact_trace", "hutchinson_trace", "stateless_seed"]
