"""`FFJORD`: a continuous normalizing flow as a TFP bijector (Grathwohl et al.
2019), with RNODE's kinetic and Jacobian regularizers (Finlay et al. 2020).

The forward map solves dz/dt = f(t, z) from t0 to t1 with `ode_zoo.odeint` on
the augmented state [z, L] with dL/dt = Tr(∂f/∂z): L(t1) is the forward
log-det-Jacobian (the log-density changes by −L). The inverse solves the same
ODE from t1 back to t0, where L ends at the inverse log-det-Jacobian. With
`regularize=True` two more channels integrate ‖f‖² (kinetic energy) and
‖∂f/∂z‖²_F (its exact value or Hutchinson estimate) per example.

Each solve yields the map and its log-det together; like TFP's own FFJORD the
bijector keeps both in TFP's bijector cache, so `log_prob` (inverse, then its
log-det), `sample`, or `forward` followed by `forward_log_det_jacobian` on the
same tensor solve once. The cache holds a result only while its output tensor is
alive: asking for a log-det first and the map later solves twice, and a tensor
whose output is still held returns the cached result even after the field's
weights change.

Example:
    >>> import tensorflow as tf
    >>> import tensorflow_probability as tfp
    >>> from ode_zoo.flows import FFJORD
    >>> flow = FFJORD(lambda t, z: -z)          # z(1) = z(0)·e⁻¹, log-det = −D
    >>> base = tfp.distributions.MultivariateNormalDiag(loc=tf.zeros(2))
    >>> dist = tfp.distributions.TransformedDistribution(base, flow)
    >>> x = tf.constant([[0.5, -1.0]])
    >>> round(float(dist.log_prob(x)[0] - base.log_prob(x * 2.718281828)[0]), 4)
    2.0
"""
from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple, Union

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import cache_util

from ode_zoo.flows.trace_estimators import (TRACE_ESTIMATORS, TraceEstimate, TraceEstimator,
                                            stateless_seed)
from ode_zoo.solvers import Solver, SolverLike, odeint
from ode_zoo.solvers.stats import StatsSink

tfb = tfp.bijectors


class FlowResult(NamedTuple):
    """One solve of the flow with RNODE's regularizers (all per example).

    Attributes:
      output: the transformed batch [..., D].
      log_det_jacobian: log |det ∂output/∂input|, shape [...].
      kinetic: ∫‖f(t, z)‖² dt along the trajectory, shape [...].
      jacobian: ∫‖∂f/∂z‖²_F dt (exact trace) or ∫‖εᵀ∂f/∂z‖² dt (Hutchinson), [...].
    """

    output: tf.Tensor
    log_det_jacobian: tf.Tensor
    kinetic: tf.Tensor
    jacobian: tf.Tensor


class _AugmentedDynamics:
    """d/dt of the augmented state (z, L[, kinetic, jacobian]) for the field
    `fn(t, z, params)` (explicit parameters) or `fn(t, z)`."""

    def __init__(self, fn: Callable, estimator: TraceEstimator, noise: Optional[tf.Tensor],
                 regularize: bool, explicit: bool):
        self._fn = fn
        self._estimator = estimator
        self._noise = noise
        self._regularize = regularize
        self._explicit = explicit

    def __call__(self, t: tf.Tensor, state: Tuple[tf.Tensor, ...],
                 params: Optional[Sequence[tf.Tensor]] = None) -> Tuple:
        field = (lambda s, z: self._fn(s, z, params)) if self._explicit else self._fn
        estimate: TraceEstimate = self._estimator.estimate(field, t, state[0], self._noise)
        derivative = (estimate.derivative, estimate.trace)
        if self._regularize:
            derivative += (tf.reduce_sum(tf.square(estimate.derivative), axis=-1),
                           estimate.frobenius)
        return derivative


class FFJORD(tfb.Bijector):
    """Continuous normalizing flow x = z(t0) ↦ y = z(t1) on events of shape [D].

    Args:
      state_time_derivative_fn: f(t, z) for batch-major z [N, D] (any callable: a
        `tf.Module`, a function reading `tf.Variable`s), or f(t, z, params) with
        `params`.
      params: a function returning the field's parameters as tensors, read at every
        solve; f is then evaluated on them explicitly and its gradients reach them
        (also with the adjoint). A Keras layer's: `ode_zoo.layers.KerasField`.
      trace: "exact" (full Jacobian, D vector–Jacobian products per evaluation),
        "hutchinson_gaussian" or "hutchinson_rademacher" (one product; noise drawn
        once per solve). Default "exact".
      seed: seed of the Hutchinson noise (int or int tensor of shape [2]); the same
        seed gives the same noise, so results are reproducible. None (default)
        draws a fresh seed for every solve (what training wants).
      t0, t1: integration interval of the forward map (default 0 and 1).
      solver: the `Solver` of every solve (or its config dict); default dopri5 at
        rtol = atol = 1e-5. Its settings may also be given as keywords (`**options`).
      regularize: also integrate RNODE's kinetic and Jacobian channels, returned by
        `forward_with_regularizers` / `inverse_with_regularizers` (default False).
      stats_sink: a `StatsSink` (e.g. `ode_zoo.layers.ode_block.EvaluationCount`)
        that records the `SolveStats` of every forward and inverse solve (a result
        served from the bijector cache records nothing). Default None.
      backward_stats_sink: a `StatsSink` for the adjoint's backward solves, recorded
        when a gradient is computed; needs `adjoint`. Default None.
      validate_args: TFP's flag (default False).
      name: name scope of the bijector's ops (default "ffjord").

    Example:
        >>> import tensorflow as tf
        >>> flow = FFJORD(lambda t, z: tf.ones_like(z), t1=2.0)
        >>> flow.forward(tf.zeros([1, 2])).numpy().round(4).tolist()
        [[2.0, 2.0]]
        >>> flow.forward_log_det_jacobian(tf.zeros([1, 2]), event_ndims=1).numpy().tolist()
        [0.0]
        >>> from ode_zoo.layers.ode_block import EvaluationCount
        >>> nfe = EvaluationCount()
        >>> _ = FFJORD(lambda t, z: -z, method="rk4", num_steps=3, stats_sink=nfe).forward(
        ...     tf.ones([1, 2]))
        >>> float(nfe.result())                 # 3 steps of 4 stages
        12.0
    """

    _cache = cache_util.BijectorCacheWithGreedyAttrs(
        forward_name="_augmented_forward", inverse_name="_augmented_inverse")

    def __init__(self, state_time_derivative_fn: Callable, *, trace: str = "exact",
                 seed: Optional[Union[int, tf.Tensor]] = None, t0: float = 0.0,
                 t1: float = 1.0, solver: SolverLike = None,
                 params: Optional[Callable[[], Sequence[tf.Tensor]]] = None,
                 regularize: bool = False, stats_sink: Optional[StatsSink] = None,
                 backward_stats_sink: Optional[StatsSink] = None,
                 validate_args: bool = False, name: str = "ffjord", **options: Any):
        parameters = dict(locals())
        if not callable(state_time_derivative_fn):
            raise TypeError("state_time_derivative_fn must be callable as f(t, z), got "
                            f"{type(state_time_derivative_fn).__name__}.")
        if trace not in TRACE_ESTIMATORS:
            raise ValueError(f"Unknown trace {trace!r}; available trace estimators are "
                             f"{sorted(TRACE_ESTIMATORS)}.")
        solver = Solver.resolve(solver, options)
        if float(t0) == float(t1):
            raise ValueError(f"t0 and t1 must differ, got t0 = t1 = {t0}.")
        if backward_stats_sink is not None and solver.adjoint is False:
            raise ValueError("backward_stats_sink records the adjoint's backward solves; pass "
                             "adjoint=True or 'seminorm' with it (got adjoint=False).")
        with tf.name_scope(name) as name:
            self._fn = state_time_derivative_fn
            self._params = params
            self._trace = trace
            self._estimator = TRACE_ESTIMATORS[trace]
            self._seed = seed
            self._t0, self._t1 = float(t0), float(t1)
            self._solver = solver
            self._regularize = bool(regularize)
            self._stats_sink = stats_sink
            self._backward_stats_sink = backward_stats_sink
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    @property
    def trace(self) -> str:
        """The trace estimator's name."""
        return self._trace

    @property
    def solver(self) -> Solver:
        """The settings of every solve."""
        return self._solver

    @property
    def regularize(self) -> bool:
        """Whether solves integrate RNODE's kinetic and Jacobian channels."""
        return self._regularize

    def _solve(self, x: tf.Tensor, t_start: float,
               t_end: float) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """Integrate the augmented ODE from t_start to t_end; returns the end state
        and {"log_det", and with regularize "kinetic", "jacobian"} per example."""
        dtype = x.dtype
        if not dtype.is_floating:
            raise TypeError(f"FFJORD needs a float32 or float64 input, got {dtype.name}.")
        if x.shape.rank is not None and x.shape.rank < 1:
            raise ValueError("FFJORD acts on events of shape [D]; got a scalar input.")
        batch_shape = tf.shape(x)[:-1]
        z = tf.reshape(x, tf.stack([-1, tf.shape(x)[-1]]))
        z.set_shape([None, x.shape[-1]])
        zeros = tf.zeros(tf.shape(z)[:1], dtype)
        state = (z, zeros) + ((zeros, zeros) if self._regularize else ())
        noise = self._estimator.sample_noise(tf.shape(z), dtype, stateless_seed(self._seed))
        explicit = self._params is not None
        dynamics = _AugmentedDynamics(self._fn, self._estimator, noise, self._regularize,
                                      explicit)
        times = tf.constant([t_start, t_end], dtype)
        solution, stats = odeint(dynamics, state, times, self._solver,
                                 params=list(self._params()) if explicit else None,
                                 return_stats=True, backward_stats=self._backward_stats_sink)
        recorded = [] if self._stats_sink is None else self._stats_sink.record(stats)
        with tf.control_dependencies(recorded):
            end = [tf.reshape(s[-1], tf.concat([batch_shape, tf.shape(s)[2:]], 0))
                   for s in solution]
        channels = {"log_det": end[1]}
        if self._regularize:
            # Integrals over a decreasing time grid come out negative.
            sign = 1.0 if t_end > t_start else -1.0
            channels.update(kinetic=sign * end[2], jacobian=sign * end[3])
        return end[0], channels

    def _augmented_forward(self, x: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """y and the cache attributes (fldj, ildj, RNODE channels) of one solve."""
        y, channels = self._solve(x, self._t0, self._t1)
        log_det = channels.pop("log_det")
        return y, dict(channels, fldj=log_det, ildj=-log_det)

    def _augmented_inverse(self, y: tf.Tensor) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """x and the cache attributes (ildj, fldj, RNODE channels) of one solve."""
        x, channels = self._solve(y, self._t1, self._t0)
        log_det = channels.pop("log_det")
        return x, dict(channels, ildj=log_det, fldj=-log_det)

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self._augmented_forward(x)[0]

    def _inverse(self, y: tf.Tensor) -> tf.Tensor:
        return self._augmented_inverse(y)[0]

    def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
        attributes = self._cache.forward_attributes(x)
        if "fldj" not in attributes:
            attributes.update(self._augmented_forward(x)[1])
        return attributes["fldj"]

    def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
        attributes = self._cache.inverse_attributes(y)
        if "ildj" not in attributes:
            attributes.update(self._augmented_inverse(y)[1])
        return attributes["ildj"]

    def forward_with_regularizers(self, x: Any) -> FlowResult:
        """The forward map, its log-det and RNODE's integrals in one (cached) solve.

        Example:
            >>> import tensorflow as tf
            >>> flow = FFJORD(lambda t, z: 3.0 * tf.ones_like(z), regularize=True)
            >>> result = flow.forward_with_regularizers(tf.zeros([1, 2]))
            >>> round(float(result.kinetic[0]), 4)    # ∫ ‖(3, 3)‖² dt over [0, 1]
            18.0
        """
        with tf.name_scope(self.name):
            x = self._check_regularized(x, "x")
            y = self.forward(x)
            return FlowResult(y, *self._regularized_attributes(
                self._cache.forward_attributes(x), "fldj"))

    def inverse_with_regularizers(self, y: Any) -> FlowResult:
        """The inverse map (data → base, the direction `log_prob` and training
        use), its log-det and RNODE's integrals in one (cached) solve; a loss is
        −(base.log_prob(output) + log_det_jacobian) + λ_K·kinetic + λ_J·jacobian.

        Example:
            >>> import tensorflow as tf
            >>> flow = FFJORD(lambda t, z: -z, regularize=True)
            >>> result = flow.inverse_with_regularizers(tf.ones([3, 2]))
            >>> [round(float(v), 4) for v in result.log_det_jacobian]
            [2.0, 2.0, 2.0]
        """
        with tf.name_scope(self.name):
            y = self._check_regularized(y, "y")
            x = self.inverse(y)
            return FlowResult(x, *self._regularized_attributes(
                self._cache.inverse_attributes(y), "ildj"))

    def _check_regularized(self, value: Any, name: str) -> tf.Tensor:
        if not self._regularize:
            raise ValueError("This FFJORD was built with regularize=False; construct it with "
                             "regularize=True to integrate the kinetic and Jacobian channels.")
        return tf.convert_to_tensor(value, name=name)

    @staticmethod
    def _regularized_attributes(attributes: Dict[str, tf.Tensor],
                                log_det_key: str) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return attributes[log_det_key], attributes["kinetic"], attributes["jacobian"]
