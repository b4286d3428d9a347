"""Presets: a model saved as a self-describing directory (the KerasHub layout).

    config.json        the zoo config the model came from (dataset, recipe, evaluation),
                       with `model.config` set to the model's own constructor arguments;
                       loading a published name reads this file, not zoo_configs/ (the
                       weights were trained and measured with it; a test keeps the two
                       from drifting)
    model.weights.h5   the weights
    metadata.json      provenance: what the caller passes (metrics with the command that
                       measured them, data, hardware, hours, epochs) plus the ode_zoo,
                       Keras and TensorFlow versions, parameter count, date and the
                       weights' SHA-256, which loading checks

A published zoo model keeps one preset per version (`ode_zoo.zoo.versions`).

Example:
    >>> import tempfile, ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
    ...                      method="rk4", num_steps=1)
    >>> path = save_to_preset(model, tempfile.mkdtemp(), {"epochs": 0})
    >>> load_preset(path, num_steps=2).architecture_config()["solver"]["num_steps"]
    2
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import keras
import tensorflow as tf

from ode_zoo import __version__
from ode_zoo.solvers.solver import SOLVER_SETTINGS, solver_settings
from ode_zoo.zoo.configs import validate_config
from ode_zoo.zoo.recipes import build_model, compile_model, model_class

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
LAYOUT = (f"a preset holds {CONFIG_FILE}, {WEIGHTS_FILE} and {METADATA_FILE}, "
          "written by save_to_preset")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _read_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {LAYOUT}.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def save_to_preset(model: keras.Model, directory: Union[str, os.PathLike],
                   metadata: Optional[Dict[str, Any]] = None,
                   extra_files: Optional[Mapping[str, Union[str, os.PathLike]]] = None) -> Path:
    """Write `model` (from `ode_zoo.load` or `recipes.build_model`) as a preset.

    `metadata` keys win over the ones added here (so a caller may give the date
    its metrics were measured); `extra_files` are copied in beside them (name in
    the preset -> source file; publish: the training history). The files are
    written into a temporary folder beside `directory`, which then replaces it:
    a failure (a full disk) leaves the old preset, or none, never half of one.
    Returns the preset directory.
    """
    config = getattr(model, "zoo_config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no zoo config to save; get zoo models "
                         "from ode_zoo.load(...) or ode_zoo.zoo.recipes.build_model(config).")
    model.build_variables()
    directory = Path(directory).resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".tmp-{directory.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        config["model"] = {"class": type(model).__name__, "config": model.architecture_config()}
        _write_json(staging / CONFIG_FILE, config)
        # Saved from an uncompiled copy: a compiled model's save_weights adds optimizer state.
        weights_only = build_model(config)
        weights_only.set_weights(model.get_weights())
        weights_only.save_weights(str(staging / WEIGHTS_FILE))
        _write_json(staging / METADATA_FILE, {
            "ode_zoo_version": __version__, "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__, "parameter_count": model.count_params(),
            "date": datetime.date.today().isoformat(),
            "weights_sha256": _sha256(staging / WEIGHTS_FILE), **(metadata or {})})
        for name, source in (extra_files or {}).items():
            shutil.copy(source, staging / name)
        if directory.exists():
            # Other files of an existing preset (training history, serving exports) stay.
            for path in staging.iterdir():
                os.replace(path, directory / path.name)
        else:
            os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _build_with_overrides(config: Dict[str, Any],
                          overrides: Optional[Dict[str, Any]]) -> keras.Model:
    """The model with `overrides` of its constructor arguments; a model with a
    `solver` also takes that solver's settings (`method="rk4", num_steps=2`), which
    replace those of the config's solver."""
    cls = model_class(config)
    overrides = dict(overrides or {})
    settings = solver_settings(overrides) if "solver" in cls.config_keys() else {}
    unknown = sorted(set(overrides) - set(cls.config_keys()))
    if unknown:
        solver_keys = (f" and the solver's settings {sorted(SOLVER_SETTINGS)}"
                       if "solver" in cls.config_keys() else "")
        raise ValueError(f"Unknown override(s) {unknown} for {cls.__name__}; allowed keys "
                         f"are {cls.config_keys()}{solver_keys}.")
    return build_model(config, {**overrides, **settings})


def _compile(model: keras.Model) -> keras.Model:
    compile_model(model, model.zoo_config)     # base learning rate: no training schedule
    return model


def build_compiled_model(config: Dict[str, Any],
                         overrides: Optional[Dict[str, Any]] = None) -> keras.Model:
    """The config's model with `overrides` of its constructor arguments (unknown keys
    are errors), compiled with the recipe's optimizer, loss and metrics at the recipe's
    base learning rate."""
    return _compile(_build_with_overrides(config, overrides))


def _load_weights(model: keras.Model, directory: Path) -> None:
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} not found; {LAYOUT}.")
    recorded = model.zoo_metadata.get("weights_sha256")
    if recorded != _sha256(path):
        raise ValueError(f"Weights file {path} does not match the SHA-256 recorded in "
                         f"{directory / METADATA_FILE} ({recorded}): it is corrupt or was "
                         "replaced; write presets with save_to_preset.")
    try:
        model.load_weights(str(path))
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"Weights file {path} could not be loaded into {type(model).__name__}"
                         f"({model.architecture_config()}): it is corrupt or holds weights of "
                         f"another architecture ({first_line})") from e


def load_preset(directory: Union[str, os.PathLike], load_weights: bool = True,
                **overrides: Any) -> keras.Model:
    """The compiled model of a preset directory, with its weights unless
    `load_weights=False`: the class named in its config.json from the Keras
    registry, constructed from that config with `overrides` (e.g. the solver),
    its weights created without solving anything, the weights file loaded, then
    compiled. The preset's metadata.json becomes `model.zoo_metadata`."""
    directory = Path(directory)
    config = validate_config(_read_json(directory / CONFIG_FILE), str(directory / CONFIG_FILE))
    model = _build_with_overrides(config, overrides)
    model.zoo_metadata = _read_json(directory / METADATA_FILE)
    if load_weights:
        _load_weights(model, directory)  # before compiling: the file has no optimizer state
    return _compile(model)
