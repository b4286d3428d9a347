"""`fixed_point`: the one public entry point for solving z = f(z) per batch element."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import tensorflow as tf

from ode_zoo.equilibrium.anderson import Anderson
from ode_zoo.equilibrium.broyden import Broyden
from ode_zoo.equilibrium.iterate import iterate
from ode_zoo.equilibrium.picard import Picard
from ode_zoo.equilibrium.result import FixedPointResult

METHODS = {"broyden": Broyden, "anderson": Anderson, "picard": Picard}
STOP_MODES = ("rel", "abs")


def make_method(method: str, memory: Optional[int] = None, damping: Optional[float] = None,
                regularization: Optional[float] = None):
    """The method object for `method` with the given options (None: its default).

    Raises a `ValueError` naming the accepted values for an unknown method, an
    option the method does not take, or an option out of range.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; available methods are {sorted(METHODS)}.")
    given = {k: v for k, v in dict(memory=memory, damping=damping,
                                   regularization=regularization).items() if v is not None}
    cls = METHODS[method]
    accepted = [field.name for field in dataclasses.fields(cls)]
    for name in given:
        if name not in accepted:
            raise ValueError(f"Method {method!r} takes no {name!r}; its options are {accepted}.")
    if "memory" in given and (int(memory) != memory or memory < 1):
        raise ValueError(f"memory must be a positive integer, got {memory}.")
    if "damping" in given and not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping}.")
    if "regularization" in given and not 0 <= regularization < math.inf:
        raise ValueError(f"regularization must be finite and >= 0, got {regularization}.")
    if "memory" in given:
        given["memory"] = int(memory)
    return cls(**given)


def fixed_point(f: Callable[[tf.Tensor], tf.Tensor], z0: tf.Tensor, *, method: str = "broyden",
                tol: float = 1e-3, max_iter: int = 40, stop_mode: str = "rel",
                memory: Optional[int] = None, damping: Optional[float] = None,
                regularization: Optional[float] = None) -> FixedPointResult:
    """Find z* = f(z*) for every batch element of z0, each stopping on its own.

    Runs one `tf.while_loop` with static shapes: works eagerly, in `tf.function`
    and with `jit_compile=True`. Nothing is raised inside the loop: an element
    that does not converge reports `converged=False` after `max_iter`
    iterations (or earlier only where f returned inf or NaN). With "broyden" or
    "anderson", an element whose residual stalls (no new best in 10 iterations)
    or jumps (10 times its best) restarts from its best iterate with an empty
    history, so limited memory never ends a solve early. No gradient is meant to flow through the iterations (call it
    under `tf.stop_gradient` or a tape that does not watch).

    Args:
      f: maps a [batch, ...] tensor to one of the same shape and dtype; batch
        elements must not interact (f is evaluated on the whole batch, with
        converged elements frozen).
      z0: float tensor [batch, ...], the initial guess.
      method: "broyden" (limited-memory good Broyden on f(z) − z), "anderson"
        (Anderson acceleration) or "picard" (damped fixed-point iteration).
      tol: an element has converged when its stopping residual is <= tol.
      max_iter: iterations at most (f is evaluated max_iter + 1 times at most).
      stop_mode: "rel" stops on ‖f(z) − z‖ / ‖f(z)‖, "abs" on ‖f(z) − z‖.
      memory: broyden: rank-one terms kept (default 10); anderson: past
        iterates kept (default 5).
      damping: anderson β and picard α in (0, 1] (default 1.0).
      regularization: anderson λ >= 0, relative to the mean squared residual
        of its history (default 1e-4).

    Returns:
      A `FixedPointResult` (z, num_steps, abs_residual, rel_residual,
      converged, num_evaluations); all but `z` and `num_evaluations` are
      per batch element.

    Raises:
      ValueError: unknown method or stop_mode, an option the method does not
        take, tol <= 0, max_iter < 1, z0 not floating point or without a batch
        axis, f returning another shape or dtype.

    Example:
        >>> import tensorflow as tf
        >>> from ode_zoo.equilibrium import fixed_point
        >>> result = fixed_point(tf.cos, tf.zeros([2, 1]), tol=1e-6)
        >>> round(float(result.z[0, 0]), 5), bool(result.converged[0])
        (0.73909, True)
    """
    method_object = make_method(method, memory, damping, regularization)
    if not tol > 0 or not math.isfinite(tol):
        raise ValueError(f"tol must be positive and finite, got {tol}.")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}.")
    if stop_mode not in STOP_MODES:
        raise ValueError(f"Unknown stop_mode {stop_mode!r}; available are {list(STOP_MODES)}.")
    z0 = tf.convert_to_tensor(z0)
    if not z0.dtype.is_floating:
        raise ValueError(f"z0 must be a floating-point tensor, got dtype {z0.dtype.name}.")
    if z0.shape.rank is None or z0.shape.rank < 1:
        raise ValueError(f"z0 must have a leading batch axis, got shape {z0.shape}.")
    shape = tf.shape(z0)
    inner = z0.shape[1:]
    flat_shape = [shape[0], inner.num_elements() if inner.is_fully_defined() else -1]

    def flat_f(z: tf.Tensor) -> tf.Tensor:
        fz = f(tf.reshape(z, shape))
        if fz.dtype != z0.dtype or not fz.shape.is_compatible_with(z0.shape):
            raise ValueError(f"f must return z's shape and dtype {z0.shape} {z0.dtype.name}, "
                             f"got {fz.shape} {fz.dtype.name}.")
        return tf.reshape(fz, flat_shape)

    result = iterate(flat_f, method_object, tf.reshape(z0, flat_shape), tol=tol,
                     max_iter=int(max_iter), stop_mode=stop_mode)
    return result._replace(z=tf.reshape(result.z, shape))
