"""Publishing a trained zoo model (`ode-zoo publish`, `ode-zoo train --publish`):
the run's best weights are evaluated with the config's protocol and written to
`saved_models/<name>/` — config, weights, metadata with every measured number
and the command that measured it — plus `serving/1`, the TF Serving export,
checked the way the server loads it.

Example:
    >>> publish("odenet_mnist", run_dir="runs/odenet_mnist")        # doctest: +SKIP
    PosixPath('.../saved_models/odenet_mnist')
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import keras
import numpy as np

from ode_zoo.training.trainer import BEST_WEIGHTS, HISTORY
from ode_zoo.zoo.configs import load_config, zoo_dirs
from ode_zoo.zoo.evaluate import evaluate_model
from ode_zoo.zoo.export import build, export
from ode_zoo.zoo.presets import save_to_preset
from ode_zoo.zoo.recipes import build_model, compile_model, split_arrays
from ode_zoo.zoo.serving_checks import check_serving

SERVING_CHECK_EXAMPLES = 16
TRAINING_HISTORY = "training_history.json"   # the run's per-epoch metrics, kept with the preset
PathLike = Union[str, os.PathLike]


def serving_inputs(model: keras.Model, data_dir: Optional[str] = None
                   ) -> Dict[str, Mapping[str, np.ndarray]]:
    """Real test examples for every endpoint of the model's family."""
    config = model.zoo_config
    inputs, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    if config["family"] == "classifier":
        return {"serving_default": {"images": inputs[:SERVING_CHECK_EXAMPLES].astype(np.float32)}}
    raise ValueError(f"No serving inputs for model family {config['family']!r}.")


def export_and_check(model: keras.Model, directory: PathLike, version: int = 1,
                     data_dir: Optional[str] = None) -> Path:
    """Export for TF Serving and run every serving check on real examples."""
    path = export(model, directory, version)
    check_serving(path, model, serving_inputs(model, data_dir))
    return path


def training_evaluation_counts(config: Dict[str, Any], weights: PathLike,
                               data_dir: Optional[str] = None) -> Dict[str, float]:
    """Forward and backward solver evaluations of one training step, measured with
    the recipe's training solver on a real batch."""
    model = load_run_weights(config, weights, config["training"].get("model_overrides"))
    inputs, targets = split_arrays(config, config["dataset"]["train_split"], data_dir)
    batch = config["training"]["batch_size"]
    model.reset_metrics()
    logs = model.train_on_batch(inputs[:batch].astype(np.float32), targets[:batch],
                                return_dict=True)
    return {f"train_{'backward_nfe' if k.endswith('_backward_nfe') else 'forward_nfe'}": float(v)
            for k, v in logs.items() if k.endswith("_nfe")}


def load_run_weights(config: Dict[str, Any], weights: PathLike,
                     overrides: Optional[Dict[str, Any]] = None) -> keras.Model:
    """The config's model with a training run's weights, then compiled (loading
    before compiling skips the run's optimizer state in the weights file)."""
    model = build_model(config, overrides)
    build(model)
    model.load_weights(str(weights))
    compile_model(model, config)
    return model


def default_output(name: str) -> Path:
    """saved_models/<name> of this source checkout (or of the current directory)."""
    roots = zoo_dirs("saved_models")
    return (roots[-1] if roots else Path("saved_models")) / name


def publish(name: str, run_dir: PathLike, output: Optional[PathLike] = None,
            data_dir: Optional[str] = None) -> Path:
    """Evaluate the run's best weights and write the preset and its serving export."""
    config = load_config(name)
    run_dir = Path(run_dir)
    weights = run_dir / BEST_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: train first with "
                                f"`ode-zoo train {name}`.")
    record = json.loads((run_dir / HISTORY).read_text())
    model = load_run_weights(config, weights)
    metrics = evaluate_model(model, config, data_dir=data_dir)
    training = config["training"]
    metadata = {
        "metrics": metrics,
        "metrics_command": f"ode-zoo eval {name}",
        "evaluation": {**config["evaluation"], "solver": {
            k: v for k, v in config["model"]["config"].items()
            if k in ("method", "rtol", "atol", "step_size", "num_steps")}},
        "data": config["dataset"],
        "training": {
            "command": f"ode-zoo train {name} --resume --publish",
            "epochs": len(record["history"]),
            "best_epoch": record["best_epoch"],
            f"best_{training.get('monitor', 'val_accuracy')}": record["best"],
            "wall_clock_hours": round(record["train_seconds"] / 3600, 3),
            "hardware": record["hardware"],
            "solver": training.get("model_overrides", {}),
            **training_evaluation_counts(config, weights, data_dir),
        },
    }
    directory = Path(output) if output else default_output(name)
    save_to_preset(model, directory, metadata)
    shutil.copy(run_dir / HISTORY, directory / TRAINING_HISTORY)
    export_and_check(model, directory / "serving", version=1, data_dir=data_dir)
    return directory
