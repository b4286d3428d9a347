"""`ZooModel`: the mixin every zoo model inherits (before `keras.Model`), and
the hooks through which a model family tells the zoo what it is.

A family is a base class (`ImageClassifier`, `FlowModel`, `SequenceModel`)
that fills in the hooks; the zoo (training, evaluation, export, serving checks,
demos) asks the model instead of looking its family up in tables:

- `serving_endpoints()`: endpoint name -> `Endpoint(inputs, function)`, the
  batch-major input specs and the function of those inputs returning a dict of
  outputs (the first endpoint is `serving_default`);
- `serving_inputs(examples)`: inputs of every endpoint made from a batch of real
  or random examples; `random_examples(n, seed)` draws such a batch;
- `compile_defaults()`: the loss and metrics `compile` gets beside the optimizer;
- `derived_metrics(metrics, split)`: metrics computed from the logged ones;
- `evaluation_metrics(data, split)`: metrics the family measures itself on the
  evaluation batches, beside what `evaluate` logs (a Latent ODE's held-out
  interpolation);
- `labelled`: whether its batches hold (inputs, labels) or inputs only;
- `family`, `headline_metrics`, `picture`: what `ode-zoo list` and the demos show;
- `build_variables()`: create every weight without running a solve.

It also keeps the zoo config a model was built from (`zoo_config`), the metadata
of the preset it was loaded from (`zoo_metadata`), and names the constructor
arguments a config or an override may set (`config_keys()`).

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4)
    >>> model.family, list(model.serving_endpoints())
    ('classifier', ['serving_default'])
    >>> "solver" in model.config_keys()
    True
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Callable, ClassVar, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

from ode_zoo.models.batches import has_no_examples
from ode_zoo.solvers.errors import solver_errors

Requests = Dict[str, Dict[str, np.ndarray]]


class Endpoint(NamedTuple):
    """One serving signature: named batch-major input specs and the function of
    those inputs that returns a dict of named outputs."""
    inputs: Dict[str, tf.TensorSpec]
    function: Callable[..., Dict[str, tf.Tensor]]


def spec(name: str, shape: Tuple[Optional[int], ...]) -> Dict[str, tf.TensorSpec]:
    """{name: float32 TensorSpec [None, *shape]}: one batch-major endpoint input."""
    return {name: tf.TensorSpec([None, *shape], tf.float32, name=name)}


class ZooModel:
    """Mixin for zoo models: the family hooks, `zoo_config`, `zoo_metadata`,
    `config_keys`, `output_tolerance`, `architecture_config`."""

    family: ClassVar[str] = "model"
    labelled: ClassVar[bool] = False
    headline_metrics: ClassVar[Tuple[str, ...]] = ()
    picture: ClassVar[Optional[str]] = None

    # Kept as JSON text: Keras does not track it, and readers get copies.
    _zoo_config_json: Optional[str] = None
    _zoo_metadata_json: str = "{}"

    @property
    def zoo_config(self) -> Optional[Dict[str, Any]]:
        """The zoo config this model was built from (None if built by hand)."""
        return None if self._zoo_config_json is None else json.loads(self._zoo_config_json)

    @zoo_config.setter
    def zoo_config(self, config: Dict[str, Any]) -> None:
        self._zoo_config_json = json.dumps(config)

    @property
    def zoo_metadata(self) -> Dict[str, Any]:
        """The metadata.json of the preset this model was loaded from ({} if none)."""
        return json.loads(self._zoo_metadata_json)

    @zoo_metadata.setter
    def zoo_metadata(self, metadata: Dict[str, Any]) -> None:
        self._zoo_metadata_json = json.dumps(metadata)

    @classmethod
    def config_keys(cls) -> List[str]:
        """The named constructor arguments: the keys of a zoo config's `model.config`
        and of `ode_zoo.load(..., **overrides)`."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def serving_endpoints(self) -> Dict[str, Endpoint]:
        """The model's serving signatures, `serving_default` first."""
        raise NotImplementedError(f"{type(self).__name__} has no serving endpoints.")

    def random_examples(self, batch_size: int = 4, seed: int = 0,
                        free_length: int = 5) -> np.ndarray:
        """A batch of random examples of what `serving_inputs` takes: integer raw pixels
        0–255 in the shape of the first endpoint's first input (a dimension left free
        after the batch, such as a sequence's frames, gets `free_length`)."""
        first = next(iter(next(iter(self.serving_endpoints().values())).inputs.values()))
        shape = (batch_size, *[free_length if d is None else d for d in first.shape[1:]])
        return np.random.default_rng(seed).integers(0, 256, shape).astype(np.float32)

    def serving_inputs(self, examples: np.ndarray, seed: int = 0) -> Requests:
        """The inputs of every endpoint for a batch of examples: by default each
        endpoint's single input is the examples."""
        return {name: {key: examples for key in endpoint.inputs}
                for name, endpoint in self.serving_endpoints().items()}

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Keras `predict`; a batch of no examples (array or tensor) gives the model's
        empty result as NumPy, where Keras would fail. A failed solve raises the
        `ODESolverError` it raises eagerly, also in graph mode and under XLA."""
        if has_no_examples(x):
            return tf.nest.map_structure(np.asarray, self(x))
        return self._raising_solver_errors(super().predict, x, *args, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Keras `fit`; a failed solve raises its `ODESolverError` (see `predict`)."""
        return self._raising_solver_errors(super().fit, *args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Keras `evaluate`; a failed solve raises its `ODESolverError` (see `predict`)."""
        return self._raising_solver_errors(super().evaluate, *args, **kwargs)

    def _raising_solver_errors(self, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`run(*args, **kwargs)` inside `solver_errors()`: a failed solve raises the
        `ODESolverError` it raises eagerly, from the graph's assertion or, under XLA,
        which drops assertions, from the status the traced graph records."""
        with solver_errors():
            return run(*args, **kwargs)

    def compile_defaults(self) -> Dict[str, Any]:
        """`compile` arguments beside the optimizer (models with their own loss: none)."""
        return {}

    def derived_metrics(self, metrics: Dict[str, float], split: str) -> Dict[str, float]:
        """Metrics computed from the logged `{split}_*` ones (none by default)."""
        return {}

    def evaluation_metrics(self, data: tf.data.Dataset, split: str) -> Dict[str, float]:
        """Metrics measured on the evaluation split's batches `data` beyond those
        `evaluate` logs, keys prefixed by `split` (none by default)."""
        return {}

    def build_variables(self) -> None:
        """Create every weight without running the model (no ODE is solved)."""
        if not self.built:
            raise NotImplementedError(f"{type(self).__name__} must create its weights in "
                                      "__init__ or implement build_variables().")

    def output_tolerance(self, output: Optional[str] = None) -> Tuple[float, float]:
        """(rtol, atol) within which two runs of this model (Keras and its serving
        export) must agree on the endpoint output named `output`: float32 round-off
        by default; models whose outputs end an iterative solve widen it to the
        solver's tolerance."""
        return 1e-4, 1e-5

    def architecture_config(self) -> Dict[str, Any]:
        """`get_config()` restricted to `config_keys()`: what rebuilds this model."""
        keys = self.config_keys()
        return {k: v for k, v in self.get_config().items() if k in keys}
