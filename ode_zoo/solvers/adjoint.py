"""Gradients of a solve by the adjoint method (Chen et al. 2018, Algorithm 1).

The forward pass records nothing. The backward pass integrates the augmented
state [z(t), a(t) = dL/dz(t), dL/dθ] from t_N back to t_0 with vector–Jacobian
products, resetting z to the forward solution and adding dL/dz(t_i) at every
output time, so memory does not grow with the number of solver steps.
dL/dt_i = ∂L/∂y(t_i)·f(t_i, y_i) costs no evaluation: each solve that starts at
t_i (the forward from t_0, a backward segment from every later t_i) already
evaluated f there, except fixed-step methods without FSAL.

With `seminorm=True` the error control of the backward solve ignores the
dL/dθ channels (Kidger, Chen & Lyons 2021), which saves evaluations. An
adaptive backward solve starts with the step size the forward solve ended with.

Example:
    >>> import tensorflow as tf
    >>> from ode_zoo import odeint
    >>> k = tf.Variable(0.5)
    >>> with tf.GradientTape() as tape:
    ...     y1 = odeint(lambda t, y: -k * y, tf.ones([1]), tf.constant([0.0, 1.0]),
    ...                 adjoint=True)[-1, 0]
    >>> round(float(tape.gradient(y1, k)), 4)   # d/dk exp(-k) = -exp(-0.5)
    -0.6065
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import tensorflow as tf

from ode_zoo.solvers.errors import Status, guard
from ode_zoo.solvers.fields import VectorField
from ode_zoo.solvers.solve import SolverOptions, solve_flat
from ode_zoo.solvers.stats import SolveStats, StatsSink


def _augmented_dynamics(field: VectorField, params: List[tf.Tensor],
                        variables: List[tf.Variable], n: tf.Tensor):
    """d/dt [z, a, g] = [f(t, z), -aᵀ∂f/∂z, -aᵀ∂f/∂θ] for θ = params + variables."""
    def dynamics(t, state):
        z, a = state[:n], state[n:2 * n]
        with tf.GradientTape() as tape:
            tape.watch(z)
            tape.watch(params)
            dz = field(t, z, params)
        grads = tape.gradient(dz, [z] + list(params) + list(variables), output_gradients=a,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        vjps = [tf.reshape(g, [-1]) for g in grads]
        derivative = tf.concat([dz] + [-v for v in vjps], axis=0)
        derivative.set_shape(state.shape)
        return derivative
    return dynamics


def odeint_adjoint(field: VectorField, y0: tf.Tensor, t: tf.Tensor, options: SolverOptions,
                   backward_options: SolverOptions, seminorm: bool,
                   backward_stats: Optional[StatsSink] = None):
    """Solve on the packed state `y0` with adjoint gradients for y0, t and θ.

    Returns (outputs [len(t), n], forward SolveStats); the backward solve's
    counts go to `backward_stats` when the gradient is computed.
    """
    forward_stats: List[Optional[SolveStats]] = [None]

    @tf.custom_gradient
    def solve(y0, t, *params):
        forward = solve_flat(lambda s, y: field(s, y, params), y0, t, options)
        ys, forward_stats[0] = forward.outputs, forward.stats

        def derivative_at(i, start_derivative):
            """f(t[i], ys[i]): the solve that started there evaluated it (adaptive and
            FSAL methods), so dL/dt costs no evaluation; else it is evaluated."""
            if start_derivative is not None:
                return start_derivative[:n]
            return field(t[i], ys[i], params)

        def grad_fn(d_ys, variables=None):
            variables = list(variables or [])
            d_ys = tf.zeros_like(ys) if d_ys is None else d_ys
            wrt = list(params) + variables
            param_sizes = [tf.size(p) for p in wrt]
            total_param_size = tf.add_n(param_sizes) if param_sizes else tf.constant(0)
            opts = backward_options
            if seminorm:
                opts = dataclasses.replace(opts, mask=tf.concat(
                    [tf.ones([2 * n], y0.dtype), tf.zeros([total_param_size], y0.dtype)], 0))
            dynamics = _augmented_dynamics(field, list(params), variables, n)

            adaptive = not opts.fixed_step

            def segment(i, state, counts, step, d_t):
                # An adaptive backward segment starts with the step size the solve before
                # it (the forward, then the previous segment) ended with: the backward
                # trajectory runs through the same region, and the starting-step heuristic
                # would begin far too small there.
                segment_opts = dataclasses.replace(opts, first_step=step) if adaptive else opts
                solution = solve_flat(dynamics, state, tf.stack([t[i], t[i - 1]]), segment_opts)
                d_t = d_t.write(i, tf.reduce_sum(
                    d_ys[i] * derivative_at(i, solution.start_derivative)))
                end = solution.outputs[-1]
                state = tf.concat([ys[i - 1], end[n:2 * n] + d_ys[i - 1], end[2 * n:]], 0)
                state.set_shape(start.shape)
                stats = solution.stats
                status = tf.where(tf.equal(counts.status, Status.SUCCESS), stats.status,
                                  counts.status)
                return (i - 1, state,
                        SolveStats(*[c + s for c, s in zip(counts[:3], stats[:3])], status),
                        solution.next_step if adaptive else step, d_t)

            start = tf.concat([ys[-1], d_ys[-1], tf.zeros([total_param_size], y0.dtype)], 0)
            zero = tf.constant(0, tf.int32)
            first_step = forward.next_step if adaptive else tf.zeros([], y0.dtype)
            d_t = tf.TensorArray(y0.dtype, size=tf.shape(t)[0], element_shape=[])
            _, state, counts, _, d_t = tf.while_loop(
                lambda i, *_: i > 0, segment,
                (tf.shape(t)[0] - 1, start, SolveStats(zero, zero, zero, zero), first_step, d_t))
            recorded = [] if backward_stats is None else backward_stats.record(counts)
            with tf.control_dependencies(recorded):
                a0 = guard(state[n:2 * n], counts.status,
                           stage="odeint's adjoint (backward) solve",
                           max_num_steps=opts.max_num_steps, min_step_size=opts.min_step_size)
            flat_param_grads = tf.split(state[2 * n:], param_sizes) if wrt else []
            param_grads = [tf.reshape(g, tf.shape(p)) for g, p in zip(flat_param_grads, wrt)]
            d_t = d_t.write(0, -tf.reduce_sum(a0 * derivative_at(0, forward.start_derivative)))
            num_explicit = len(params)
            return ([a0, d_t.stack()] + param_grads[:num_explicit]), param_grads[num_explicit:]

        return ys, grad_fn

    n = y0.shape[0] if y0.shape[0] is not None else tf.size(y0)
    ys = solve(y0, t, *field.params)
    return ys, forward_stats[0]
