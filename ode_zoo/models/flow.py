"""The flow family: `FlowModel` (densities of points) and `ImageFlowModel`
(densities of 8-bit images), the base classes of the zoo's normalizing flows.

A flow has `log_prob(x)` (nats) and `sample(z)` (base noise z ~ N(0, I) of
D = prod(event_shape) values to data), an evaluation `Solver` that both use, and
— when it is trained by maximum likelihood — a training `Solver`. Its serving
endpoints: `log_prob(x [None, *event_shape]) -> {"log_prob"}` (also
`serving_default`) and `sample(z [None, D]) -> {"x"}`; image flows take raw
pixels 0–255 as `x`, sample raw pixels, and their `log_prob` also returns
`bits_per_dim`. `FlowModel.flow(field, solver, ...)` is the one place the
family turns a Keras field into an `FFJORD` bijector.

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False)
    >>> sorted(model.serving_endpoints()), model.eval_solver.method
    (['log_prob', 'sample', 'serving_default'], 'dopri5')
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.flows import FFJORD
from ode_zoo.flows.dequantization import bits_per_dim
from ode_zoo.layers.keras_field import KerasField
from ode_zoo.models.batches import assert_batch_shape, has_no_examples
from ode_zoo.models.base import Endpoint, Requests, ZooModel, spec
from ode_zoo.models.pixel_inputs import check_pixel_images
from ode_zoo.solvers import Solver, SolverLike
from ode_zoo.solvers.errors import solver_errors
from ode_zoo.solvers.solver import solver_settings

# FFJORD's and RNODE's evaluation protocol: dopri5 at rtol = atol = 1e-5.
EVAL_SOLVER = Solver("dopri5", rtol=1e-5, atol=1e-5)


class FlowModel(ZooModel, keras.Model):
    """Base of the flow family.

    Subclasses set `event_shape` and implement `checked_log_prob(x)` and
    `checked_sample(z)`, which `log_prob` and `sample` call on checked, non-empty
    batches.

    Args:
      solver: the training `Solver` (flows trained by maximum likelihood), or None
        for flows that train without solving; its settings may also be given as
        keywords (`method="rk4", num_steps=2`).
      eval_solver: the `Solver` of `log_prob`, `sample` and `evaluate`.
    """

    family: ClassVar[str] = "flow"
    headline_metrics: ClassVar[Tuple[str, ...]] = ("test_nll", "test_forward_nfe")
    picture: ClassVar[Optional[str]] = "density"
    default_solver: ClassVar[Optional[Solver]] = None
    # Eager `log_prob`/`sample` of more examples than this go in batches with progress.
    eager_batch_size: ClassVar[int] = 10_000

    def __init__(self, solver: SolverLike = None, eval_solver: SolverLike = None,
                 **kwargs: Any) -> None:
        settings = solver_settings(kwargs)
        super().__init__(**kwargs)
        if self.default_solver is None and (solver is not None or settings):
            raise ValueError(f"{type(self).__name__} trains without solving an ODE: it takes "
                             "an eval_solver only.")
        self.solver = (None if self.default_solver is None
                       else Solver.resolve(solver, settings, self.default_solver))
        self.eval_solver = Solver.of(eval_solver, EVAL_SOLVER)

    @property
    def event_shape(self) -> Tuple[int, ...]:
        """The shape of one data point."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """D: the number of values of one data point (and of its base noise)."""
        return int(np.prod(self.event_shape))

    def flow(self, field: keras.layers.Layer, solver: Solver, **options: Any) -> FFJORD:
        """The `FFJORD` bijector of a Keras `field` with `solver`, its weights explicit."""
        adapter = KerasField(field)
        return FFJORD(adapter, params=adapter.parameters, solver=solver, **options)

    def log_prob(self, x: Any) -> tf.Tensor:
        """log p(x) in nats [N] of a batch x [N, *event_shape] (`check_points` refuses
        other shapes and dtypes); a batch of no examples gives an empty result.
        Eagerly, the solve runs as a traced graph (`tf.function`, as in `predict`:
        an eager dopri5 loop through a U-Net field costs several times more), and a
        batch of more than `eager_batch_size` examples (a whole test set) is solved
        in batches of that size behind a progress bar.

        Example:
            >>> import ode_zoo
            >>> model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False)
            >>> model.log_prob(tf.zeros((0, 2))).shape
            TensorShape([0])
        """
        x = self.check_points(x)
        if has_no_examples(x):
            return tf.zeros([0])
        return self._in_eager_batches(self.checked_log_prob, x, "example")

    def sample(self, z: Any) -> tf.Tensor:
        """The data points [N, *event_shape] of base noise z [N, D] (`check_noise`
        refuses other shapes and dtypes); no noise gives an empty result. Eagerly,
        as a traced graph, and more than `eager_batch_size` of them in batches behind
        a progress bar."""
        z = self.check_noise(z)
        if has_no_examples(z):
            return tf.zeros([0, *self.event_shape])
        return self._in_eager_batches(self.checked_sample, z, "sample")

    def _in_eager_batches(self, solve: Callable[[tf.Tensor], tf.Tensor], batch: tf.Tensor,
                          unit: str) -> tf.Tensor:
        """`solve(batch)`; eagerly, `solve` traced once per method (a failed solve
        raises its `ODESolverError` as it would eagerly) and, for more than
        `eager_batch_size` examples, run on consecutive slices of that size with a
        progress bar, the results concatenated."""
        if not tf.executing_eagerly():
            return solve(batch)
        traced = self._traced_solves.setdefault(
            solve.__name__, tf.function(solve, reduce_retracing=True))
        size, count = self.eager_batch_size, int(batch.shape[0] or 0)
        bar = keras.utils.Progbar(count, unit_name=unit) if count > size else None
        parts = []
        with solver_errors():
            for start in range(0, count, size):
                parts.append(traced(batch[start:start + size]))
                if bar is not None:
                    bar.add(int(parts[-1].shape[0]))
        return parts[0] if len(parts) == 1 else tf.concat(parts, 0)

    @property
    def _traced_solves(self) -> Dict[str, Callable[[tf.Tensor], tf.Tensor]]:
        """The graphs of eager `log_prob`/`sample` calls, by method name; kept out of
        Keras' and TF's object tracking (a SavedModel export must not save them)."""
        if "_eager_graphs" not in self.__dict__:
            object.__setattr__(self, "_eager_graphs", {})
        return self.__dict__["_eager_graphs"]

    def checked_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        """`log_prob` of a checked batch of at least one example."""
        raise NotImplementedError(f"{type(self).__name__} must implement checked_log_prob(x).")

    def checked_sample(self, z: tf.Tensor) -> tf.Tensor:
        """`sample` of checked base noise of at least one example."""
        raise NotImplementedError(f"{type(self).__name__} must implement checked_sample(z).")

    def check_points(self, x: Any) -> tf.Tensor:
        """Points x as float32 [N, *event_shape], or a clear error (dtype, shape, NaN)."""
        x = tf.convert_to_tensor(x)
        expected = f"[N, {', '.join(map(str, self.event_shape))}]"
        if not x.dtype.is_floating:
            raise TypeError(f"{type(self).__name__} expects float32 points of shape "
                            f"{expected}, got {x.dtype.name}.")
        message = f"{type(self).__name__} expects points of shape {expected}"
        if x.shape.rank != 1 + len(self.event_shape) or tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"{message}, got {x.shape}.")
        x = assert_batch_shape(x, (None, *self.event_shape), message)
        return tf.debugging.assert_all_finite(tf.identity(tf.cast(x, tf.float32)),
                                              f"{type(self).__name__}: x contains NaN or inf.")

    def check_noise(self, z: Any) -> tf.Tensor:
        """Base noise z as float32 [N, D], or a clear error (dtype, shape, NaN)."""
        z = tf.convert_to_tensor(z)
        if not z.dtype.is_floating:
            raise TypeError(f"sample expects float32 base noise z, got {z.dtype.name}.")
        message = (f"sample expects base noise z of shape [N, {self.dim}] (D values of an "
                   f"example of shape {list(self.event_shape)})")
        if z.shape.rank != 2 or z.shape[-1] != self.dim:
            raise ValueError(f"{message}, got {z.shape}.")
        z = assert_batch_shape(z, (None, self.dim), message)
        return tf.debugging.assert_all_finite(tf.identity(tf.cast(z, tf.float32)),
                                              "sample: z contains NaN or inf.")

    def _log_prob_outputs(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {"log_prob": self.log_prob(x)}

    def serving_endpoints(self) -> Dict[str, Endpoint]:
        def log_prob(x: tf.Tensor) -> Dict[str, tf.Tensor]:
            return self._log_prob_outputs(x)

        def sample(z: tf.Tensor) -> Dict[str, tf.Tensor]:
            return {"x": self.sample(z)}

        points = spec("x", self.event_shape)
        return {"serving_default": Endpoint(points, log_prob),
                "log_prob": Endpoint(points, log_prob),
                "sample": Endpoint(spec("z", (self.dim,)), sample)}

    def random_examples(self, batch_size: int = 4, seed: int = 0,
                        free_length: int = 5) -> np.ndarray:
        """Standard normal points."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch_size, *self.event_shape)).astype(np.float32)

    def serving_inputs(self, examples: np.ndarray, seed: int = 0) -> Requests:
        """Examples as `x` of log_prob, and seeded standard normal `z` for sample."""
        noise = np.random.default_rng(seed).standard_normal(
            (len(examples), self.dim)).astype(np.float32)
        return {"serving_default": {"x": examples}, "log_prob": {"x": examples},
                "sample": {"z": noise}}

    def get_config(self) -> dict:
        config = super().get_config()
        config["eval_solver"] = self.eval_solver.get_config()
        if self.solver is not None:
            config["solver"] = self.solver.get_config()
        return config


class ImageFlowModel(FlowModel):
    """Base of flows of 8-bit images [N, H, W, C] given as raw pixels 0–255: their
    `log_prob` endpoint also returns `bits_per_dim`, inputs are checked by
    `check_pixel_images`, and samples are raw pixels."""

    headline_metrics: ClassVar[Tuple[str, ...]] = (
        "test_bits_per_dim", "test_sample_confident_share", "test_forward_nfe")
    picture: ClassVar[Optional[str]] = "image_grid"
    eager_batch_size: ClassVar[int] = 500

    def __init__(self, image_shape: Sequence[int] = (28, 28, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {tuple(image_shape)}.")

    @property
    def event_shape(self) -> Tuple[int, ...]:
        return self.image_shape

    def check_images(self, images: Any) -> tf.Tensor:
        """Raw pixels 0–255 (integers, float32) of shape [N, H, W, C], or a clear error."""
        return check_pixel_images(images, self.image_shape, type(self).__name__, integers=True)

    def check_points(self, x: Any) -> tf.Tensor:
        """An image flow's points are images: `check_images`."""
        return self.check_images(x)

    def bits_per_dim(self, images: Any) -> tf.Tensor:
        """−log P(x) / (D·ln 2) per image [N] (see `log_prob`)."""
        return bits_per_dim(self.log_prob(images), self.dim)

    def _log_prob_outputs(self, x: tf.Tensor) -> Dict[str, tf.Tensor]:
        values = self.log_prob(x)
        return {"log_prob": values, "bits_per_dim": bits_per_dim(values, self.dim)}

    def random_examples(self, batch_size: int = 4, seed: int = 0,
                        free_length: int = 5) -> np.ndarray:
        """Integer raw pixels 0–255."""
        shape = (batch_size, *self.image_shape)
        return np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)

    def output_tolerance(self, output: Optional[str] = None) -> Tuple[float, float]:
        """Sampled images (`x`) are whole pixel values: round-off of the decoding solve
        can move a pixel that sits at a rounding boundary by one level."""
        return (0.0, 1.0) if output == "x" else super().output_tolerance(output)

    def get_config(self) -> dict:
        config = super().get_config()
        config["image_shape"] = list(self.image_shape)
        return config
