"""`ZooModel`: the mixin every zoo model inherits (before `keras.Model`).

It keeps the zoo config a model was built from (`model.zoo_config`, set by
`ode_zoo.zoo.recipes.build_model`) and the metadata of the preset it was loaded
from (`model.zoo_metadata`), names the constructor arguments a config or an
override may set (`config_keys()`), and gives `model.save_to_preset(dir)`.

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
    ...                      method="rk4", num_steps=1)
    >>> model.zoo_config["family"], model.architecture_config()["filters"]
    ('classifier', 8)
    >>> "num_steps" in model.config_keys()
    True
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union


class ZooModel:
    """Mixin for zoo models: `zoo_config`, `zoo_metadata`, `config_keys`, `output_tolerance`,
    `architecture_config`, `save_to_preset`."""

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

    def save_to_preset(self, directory: Union[str, os.PathLike],
                       metadata: Optional[Dict[str, Any]] = None) -> Path:
        """Write this model as a preset; see `ode_zoo.zoo.presets.save_to_preset`."""
        # Imported here: the zoo layer sits above models/ and imports it.
        from ode_zoo.zoo.presets import save_to_preset
        return save_to_preset(self, directory, metadata)
