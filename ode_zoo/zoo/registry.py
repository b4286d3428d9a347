"""The zoo by name: `list_models()` and `load(name_or_path)`.

A zoo name is a config in `zoo_configs/`; its published preset (weights) lives
in `saved_models/<name>/`. Both are looked for inside the installed package,
then beside it in a source checkout (`configs.zoo_dirs`).

Example:
    >>> import ode_zoo
    >>> "odenet_mnist" in ode_zoo.list_models()
    True
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, method="rk4", num_steps=2)
    >>> model.solver.method
    'rk4'

Which config: a published name loads its preset (`saved_models/<name>/config.json`,
what its weights were trained and measured with); an unpublished one builds from
`zoo_configs/<name>.json`. tests/test_presets.py keeps the two from drifting.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Union

import keras

from ode_zoo.zoo.catalog import published_dir
from ode_zoo.zoo.configs import available_configs, load_config
from ode_zoo.zoo.presets import build_compiled_model, load_preset


def list_models() -> List[str]:
    """Names of the zoo's models (published weights or not)."""
    return sorted(available_configs())


def load(name_or_path: Union[str, os.PathLike], load_weights: bool = True,
         **overrides: Any) -> keras.Model:
    """A compiled zoo model, ready for `fit`, `evaluate` and `predict`.

    Args:
      name_or_path: a zoo name (see `list_models()`) or a preset directory
        (written by `save_to_preset`). A zoo name wins over a same-named folder.
      load_weights: False gives the untrained model.
      **overrides: constructor arguments to replace (e.g. `eval_solver={...}`) and,
        for a model with a `solver`, that solver's settings (`method="rk4", num_steps=2`).
    """
    name = str(name_or_path)
    if name in available_configs():
        preset = published_dir(name)
        if preset is not None:
            return load_preset(preset, load_weights, **overrides)
        if load_weights:
            raise FileNotFoundError(
                f"{name!r} has no published weights (saved_models/{name}/model.weights.h5). "
                f"Train and publish them with `ode-zoo train {name} --publish`, or load the "
                f"untrained model with ode_zoo.load({name!r}, load_weights=False).")
        return build_compiled_model(load_config(name), overrides)
    if Path(name_or_path).is_dir():
        return load_preset(name_or_path, load_weights, **overrides)
    raise ValueError(f"Unknown zoo model {name!r}; available models are {list_models()}, "
                     "or pass a preset directory.")
