"""`BayesianMLP`: an MLP with a mean-field Gaussian posterior over its weights,
q(W) = N(m, diag(σ²)) (one mean and one variance per weight and bias), under
the prior p(W) = N(0, I) — ODE2VAE's Bayesian acceleration field f_W.

`sample_weights` draws reparameterized weight sets (gradients reach m and σ²);
`mlp_with_trace` evaluates the network on drawn weights and, for a
second-order ODE, also returns the trace of its Jacobian with respect to a
slice of its inputs, computed exactly by forward-mode propagation through the
layers (no autodiff inside the ODE).

Example:
    >>> import tensorflow as tf
    >>> mlp = BayesianMLP(input_dim=4, output_dim=2, hidden_units=(8,))
    >>> mlp(tf.ones((3, 4))).shape                          # posterior-mean weights
    TensorShape([3, 2])
    >>> weights = mlp.sample_weights(num_samples=5, seed=tf.constant([1, 2]))
    >>> outputs, trace = mlp_with_trace(weights, tf.ones((5, 3, 4)), "tanh", trace_start=2)
    >>> outputs.shape, trace.shape, mlp.num_weights
    (TensorShape([5, 3, 2]), TensorShape([5, 3]), 58)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# activation: (function, derivative given the pre-activation and the activation)
ACTIVATIONS: Dict[str, Tuple[Callable, Callable]] = {
    "tanh": (tf.tanh, lambda pre, out: 1.0 - tf.square(out)),
    "relu": (tf.nn.relu, lambda pre, out: tf.cast(pre > 0, pre.dtype)),
    "softplus": (tf.nn.softplus, lambda pre, out: tf.sigmoid(pre)),
    "sigmoid": (tf.sigmoid, lambda pre, out: out * (1.0 - out)),
}

Weights = List[Tuple[tf.Tensor, tf.Tensor]]


def check_activation(activation: str) -> None:
    """Raise a `ValueError` listing the activations `mlp_with_trace` differentiates."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; available activations are "
                         f"{sorted(ACTIVATIONS)}.")


def mlp_with_trace(weights: Weights, inputs: tf.Tensor, activation: str,
                   trace_start: Optional[int] = None) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """Outputs [L, N, out] of an MLP with weight sets `weights` (kernels [L, in, out],
    biases [L, out]) on `inputs` [L, N, in], and, given `trace_start`, the trace
    [L, N] of ∂outputs/∂inputs[..., trace_start:trace_start + out] (else None).

    The activation applies to every layer but the last. The Jacobian rows of
    the traced inputs are carried through the layers ([L, N, out, width]), so
    the trace is exact and twice differentiable.
    """
    function, derivative = ACTIVATIONS[activation]
    width = int(weights[-1][0].shape[-1])
    h, tangent = inputs, None                     # tangent: ∂h/∂(traced inputs), transposed
    for i, (kernel, bias) in enumerate(weights):
        pre = tf.matmul(h, kernel) + bias[:, None, :]
        if trace_start is not None:
            tangent = (kernel[:, None, trace_start:trace_start + width, :] if tangent is None
                       else tf.einsum("lnqh,lhk->lnqk", tangent, kernel))
        h = function(pre) if i < len(weights) - 1 else pre
        if trace_start is not None and i < len(weights) - 1:
            tangent = tangent * derivative(pre, h)[:, :, None, :]
    if trace_start is None:
        return h, None
    trace = tf.linalg.trace(tangent)              # [L, N] (or [L, 1] for one linear layer)
    return h, tf.broadcast_to(trace, tf.shape(h)[:2])


@keras.saving.register_keras_serializable(package="ode_zoo")
class BayesianMLP(keras.layers.Layer):
    """An MLP `input_dim` → hidden_units → `output_dim` whose weights and biases
    have the posterior N(mean, variance) each (prior N(0, 1)).

    Args:
      input_dim, output_dim: sizes of the inputs and outputs.
      hidden_units: widths of the hidden layers.
      activation: "tanh", "relu", "softplus" or "sigmoid" (hidden layers only).
      initial_variance: starting posterior variance of every weight (means
        start Glorot-uniform, biases at 0).
      **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, input_dim: int, output_dim: int, hidden_units: Sequence[int] = (50, 50),
                 activation: str = "relu", initial_variance: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_activation(activation)
        if not initial_variance > 0:
            raise ValueError(f"initial_variance must be positive, got {initial_variance}.")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.initial_variance = float(initial_variance)
        self.build((None, self.input_dim))

    def build(self, input_shape: Any) -> None:
        if self.built:
            return
        sizes = (self.input_dim,) + self.hidden_units + (self.output_dim,)
        log_variance = keras.initializers.Constant(math.log(self.initial_variance))
        self._means, self._log_variances = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            for part, shape, init in (("kernel", (fan_in, fan_out), "glorot_uniform"),
                                      ("bias", (fan_out,), "zeros")):
                self._means.append(self.add_weight(shape=shape, initializer=init,
                                                   name=f"{part}_{i}_mean"))
                self._log_variances.append(self.add_weight(
                    shape=shape, initializer=log_variance, name=f"{part}_{i}_log_variance"))
        self.built = True

    @property
    def num_weights(self) -> int:
        """|W|: the number of weights and biases."""
        return sum(math.prod(m.shape) for m in self._means)

    def posterior(self) -> List[tfd.Normal]:
        """q(W): one `tfd.Normal` per kernel and bias, in layer order."""
        return [tfd.Normal(m, tf.exp(0.5 * v)) for m, v in zip(self._means, self._log_variances)]

    def kl_divergence(self) -> tf.Tensor:
        """KL(q(W) ‖ N(0, I)) summed over all weights and biases."""
        return tf.add_n([tf.reduce_sum(tfd.kl_divergence(q, tfd.Normal(0.0, 1.0)))
                         for q in self.posterior()])

    def sample_weights(self, num_samples: int, seed: tf.Tensor) -> Weights:
        """`num_samples` reparameterized draws of W ([L, in, out] kernels, [L, out]
        biases) from the stateless `seed` (shape [2])."""
        posterior = self.posterior()
        seeds = tfp.random.split_seed(seed, n=len(posterior))
        draws = [q.sample(num_samples, seed=s) for q, s in zip(posterior, seeds)]
        return list(zip(draws[0::2], draws[1::2]))

    def mean_weights(self) -> Weights:
        """The posterior means as one weight set ([1, in, out], [1, out])."""
        means = [m[None] for m in self._means]
        return list(zip(means[0::2], means[1::2]))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """The network with the posterior-mean weights on `inputs` [N, input_dim]."""
        outputs, _ = mlp_with_trace(self.mean_weights(), inputs[None], self.activation)
        return outputs[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      hidden_units=list(self.hidden_units), activation=self.activation,
                      initial_variance=self.initial_variance)
        return config
