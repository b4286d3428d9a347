"""The irregular-series family: `IrregularSeriesModel`, the base of models of
batches of padded irregularly sampled series (PhysioNet 2012's ICU stays).

Inputs, a dict (also what `fit`, `evaluate` and `predict` take, with labels for a
classifier): "times" float32 [N, T] (hours), "values" float32 [N, T, D] in raw
units, "mask" float32 [N, T, D] (1 where observed). Padding after a row's last
step has an all-zero mask and repeats the row's last time. The model scales
values per variable to [0, 1] by the ranges it was built with (constructor
config, so serving needs no data files) and times by `time_unit` hours.

Its serving endpoints (TF Serving) take "times", "values", "mask" (batch-major,
T free): `serving_default` and the subclass's named task endpoint (the
classifier's outcome, e.g. `mortality`).

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("odernn_physionet", load_weights=False, units=4,
    ...                      field_units=[4], head_units=[4])
    >>> model.family, sorted(model.serving_endpoints())
    ('irregular_series', ['mortality', 'serving_default'])
    >>> examples = model.random_examples(3)
    >>> sorted(examples), examples["values"].shape
    (['mask', 'times', 'values'], (3, 5, 41))
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.layers.ode_rnn import intervals
from ode_zoo.models.base import Endpoint, Requests, ZooModel, spec
from ode_zoo.models.series_inputs import KEYS, Series, check_irregular_series


def _check_ranges(minimum: Sequence[float], maximum: Sequence[float], time_unit: float) -> None:
    """Raise a `ValueError` naming a bad range or time unit."""
    if len(minimum) != len(maximum) or not len(minimum):
        raise ValueError(f"value_minimum and value_maximum must hold one number per "
                         f"variable (as many of each), got {len(minimum)} and {len(maximum)}.")
    low, high = np.asarray(minimum, np.float64), np.asarray(maximum, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high >= low)):
        raise ValueError("value_minimum and value_maximum must be finite with "
                         "value_maximum >= value_minimum for every variable.")
    if not time_unit > 0:
        raise ValueError(f"time_unit must be a positive number of hours, got {time_unit!r}.")


class IrregularSeriesModel(ZooModel, keras.Model):
    """Base of the irregular-series family; subclasses set `endpoint_name` and
    implement `endpoint_outputs(inputs)`.

    Args:
      value_minimum, value_maximum: per variable (D each), the range scaled to
        [0, 1] (a constant variable is only shifted).
      time_unit: hours per unit of the model's time.
      **kwargs: `keras.Model` arguments.
    """

    family: ClassVar[str] = "irregular_series"
    endpoint_name: str = "predict"

    def __init__(self, value_minimum: Sequence[float], value_maximum: Sequence[float],
                 time_unit: float = 48.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_ranges(value_minimum, value_maximum, time_unit)
        # float32 values, written as their shortest decimals: configs stay readable.
        self.value_minimum = [float(str(np.float32(v))) for v in value_minimum]
        self.value_maximum = [float(str(np.float32(v))) for v in value_maximum]
        self.time_unit = float(time_unit)

    @property
    def num_variables(self) -> int:
        """D, the variables of a series."""
        return len(self.value_minimum)

    def series(self, inputs: Any) -> Series:
        """The checked batch (see `ode_zoo.models.series_inputs`)."""
        return check_irregular_series(inputs, self.num_variables, type(self).__name__)

    def value_scale(self) -> Tuple[tf.Tensor, tf.Tensor]:
        """(minimum, span) [D]: scaled = (value − minimum) / span (span 1 for a
        constant variable)."""
        minimum = tf.constant(self.value_minimum, tf.float32)
        span = tf.constant(self.value_maximum, tf.float32) - minimum
        return minimum, tf.where(span > 0, span, tf.ones_like(span))

    def encoder_inputs(self, series: Series) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(times in `time_unit`s [N, S], [scaled values, mask] [N, S, 2D], observed
        [N, S] bool), cut after the batch's last step that is not padding (S <= T):
        padding changes nothing, so dropping it changes no result."""
        minimum, span = self.value_scale()
        scaled = (series.values - minimum) / span * series.mask
        observed = tf.reduce_any(series.mask > 0, axis=-1)
        real = tf.reduce_any(observed | (intervals(series.times) > 0), axis=0)
        steps = tf.reduce_max(tf.where(real, tf.range(1, tf.shape(real)[0] + 1), 0))
        times = series.times[:, :steps] / self.time_unit
        features = tf.concat([scaled, series.mask], axis=-1)[:, :steps]
        return times, features, observed[:, :steps]

    def endpoint_outputs(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """The outputs of every serving endpoint for a batch of inputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement endpoint_outputs.")

    def serving_endpoints(self) -> Dict[str, Endpoint]:
        d = self.num_variables
        inputs = {**spec("times", (None,)), **spec("values", (None, d)),
                  **spec("mask", (None, d))}

        def serve(times: tf.Tensor, values: tf.Tensor, mask: tf.Tensor) -> Dict[str, tf.Tensor]:
            return self.endpoint_outputs({"times": times, "values": values, "mask": mask})

        endpoint = Endpoint(inputs, serve)
        return {"serving_default": endpoint, self.endpoint_name: endpoint}

    def random_examples(self, batch_size: int = 4, seed: int = 0,
                        free_length: int = 5) -> Dict[str, np.ndarray]:
        """Valid random padded series: `free_length` steps, each row 1 to
        `free_length` of them over up to 48 hours, about 30% of the variables
        observed at a step (at least one), values uniform in the model's ranges."""
        rng = np.random.default_rng(seed)
        n, t, d = batch_size, free_length, self.num_variables
        lengths = rng.integers(1, t + 1, n)
        real = np.arange(t)[None, :] < lengths[:, None]
        gaps = rng.uniform(0.1, 48.0 / t, (n, t)) * real
        gaps[:, 0] = 0.0
        mask = (rng.random((n, t, d)) < 0.3).astype(np.float32)
        mask[np.arange(n)[:, None], np.arange(t)[None, :], rng.integers(0, d, (n, t))] = 1.0
        mask *= real[:, :, None]
        low, high = np.asarray(self.value_minimum), np.asarray(self.value_maximum)
        values = (low + rng.random((n, t, d)) * (high - low)) * mask
        return {"times": np.cumsum(gaps, axis=1).astype(np.float32),
                "values": values.astype(np.float32), "mask": mask}

    def serving_inputs(self, examples: Dict[str, np.ndarray], seed: int = 0) -> Requests:
        """Every endpoint takes the examples' times, values and mask."""
        feeds = {key: np.asarray(examples[key], np.float32) for key in KEYS}
        return {name: dict(feeds) for name in self.serving_endpoints()}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(value_minimum=list(self.value_minimum),
                      value_maximum=list(self.value_maximum), time_unit=self.time_unit)
        return config
