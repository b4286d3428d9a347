"""The zoo by name: `list_models()` and `load(name_or_path)`.

A zoo name is a config in `zoo_configs/`; its published versions (weights) live
in `saved_models/<name>/<version>/` (`ode_zoo.zoo.versions`). Both are looked for
inside the installed package, then beside it in a source checkout (`configs.zoo_dirs`).

Example:
    >>> import ode_zoo
    >>> "odenet_mnist" in ode_zoo.list_models()
    True
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, method="rk4", num_steps=2)
    >>> model.solver.method
    'rk4'
    >>> find_preset("odenet_mnist", version=1)
    Located(preset=PosixPath('.../saved_models/odenet_mnist/1'), version=1)

Which config: a published name loads its version's preset
(`saved_models/<name>/<version>/config.json`, what its weights were trained and
measured with); an unpublished one builds from `zoo_configs/<name>.json`.
tests/test_model_families.py keeps the newest version's equal to it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, NamedTuple, Optional, Union

import keras

from ode_zoo.zoo.catalog import published_entry
from ode_zoo.zoo.configs import available_configs, load_config
from ode_zoo.zoo.presets import CONFIG_FILE, build_compiled_model, load_preset
from ode_zoo.zoo.versions import version_dir


def list_models() -> List[str]:
    """Names of the zoo's models (published weights or not)."""
    return sorted(available_configs())


class Located(NamedTuple):
    """A preset folder `load` reads and its version (None: a preset folder of its own)."""

    preset: Path
    version: Optional[int]


def find_preset(name_or_path: Union[str, os.PathLike],
                version: Optional[int] = None) -> Optional[Located]:
    """Where `load` finds a model: `version` (the newest when None) of a published
    zoo name or of an entry folder holding versions (saved_models/<name>), or a
    preset folder itself; None for a zoo name that is not published."""
    name = str(name_or_path)
    if name in available_configs():
        entry = published_entry(name)
        if entry is None:
            return None
    else:
        entry = Path(name_or_path)
        if not entry.is_dir():
            raise ValueError(f"Unknown zoo model {name!r}; available models are "
                             f"{list_models()}, or pass a preset directory.")
        if (entry / CONFIG_FILE).is_file():
            if version is not None:
                raise ValueError(f"{entry} is a preset of its own, without versions; load it "
                                 "without a version.")
            return Located(entry, None)
    number, preset = version_dir(entry, version)
    return Located(preset, number)


def load(name_or_path: Union[str, os.PathLike], load_weights: bool = True,
         version: Optional[int] = None, **overrides: Any) -> keras.Model:
    """A compiled zoo model, ready for `fit`, `evaluate` and `predict`.

    Args:
      name_or_path: a zoo name (see `list_models()`), an entry folder holding
        versions (saved_models/<name>) or a preset directory (written by
        `save_to_preset`). A zoo name wins over a same-named folder.
      load_weights: False gives the untrained model.
      version: the published version to load; the newest when None. A missing one
        is a ValueError naming the versions there are.
      **overrides: constructor arguments to replace (e.g. `eval_solver={...}`) and,
        for a model with a `solver`, that solver's settings (`method="rk4", num_steps=2`).
    """
    found = find_preset(name_or_path, version)
    if found is not None:
        return load_preset(found.preset, load_weights, **overrides)
    name = str(name_or_path)
    if version is not None:
        raise ValueError(f"{name!r} has no published versions, so no version {version}.")
    if load_weights:
        raise FileNotFoundError(
            f"{name!r} has no published weights (saved_models/{name}/<version>/). "
            f"Train and publish them with `ode-zoo train {name} --publish`, or load the "
            f"untrained model with ode_zoo.load({name!r}, load_weights=False).")
    return build_compiled_model(load_config(name), overrides)
