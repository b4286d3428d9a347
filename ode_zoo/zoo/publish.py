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
from typing import Any, Callable, Dict, Mapping, Optional, Union

import keras
import numpy as np

from ode_zoo.training.trainer import BEST_WEIGHTS, HISTORY
from ode_zoo.zoo.configs import load_config, zoo_dirs
from ode_zoo.zoo.evaluate import evaluate_model, solver_count_key
from ode_zoo.zoo.export import build, export
from ode_zoo.zoo.presets import save_to_preset
from ode_zoo.zoo.recipes import build_model, compile_model, family_arrays, split_arrays
from ode_zoo.zoo.serving_checks import check_serving

SERVING_CHECK_EXAMPLES = 16
TRAINING_HISTORY = "training_history.json"   # the run's per-epoch metrics, kept with the preset
# Solver options recorded in metadata: ODE solvers, and a DEQ's fixed-point tolerance.
SOLVER_KEYS = ("method", "rtol", "atol", "step_size", "num_steps", "tol", "max_iter")
EVALUATION_PREFIX = "eval_"        # a model with its own evaluation solver (eval_method, ...)
PathLike = Union[str, os.PathLike]
Requests = Dict[str, Mapping[str, np.ndarray]]


def _classifier_requests(inputs: np.ndarray) -> Requests:
    return {"serving_default": {"images": inputs}}


def _flow_requests(inputs: np.ndarray) -> Requests:
    noise = np.random.default_rng(0).standard_normal(
        (len(inputs), int(np.prod(inputs.shape[1:])))).astype(np.float32)
    return {"serving_default": {"x": inputs}, "log_prob": {"x": inputs},
            "sample": {"z": noise}}


def _sequence_requests(inputs: np.ndarray) -> Requests:
    return {"serving_default": {"sequence": inputs}, "reconstruct": {"sequence": inputs}}


# Family -> the requests of every endpoint, made from real test inputs.
SERVING_REQUESTS: Dict[str, Callable[[np.ndarray], Requests]] = {
    "classifier": _classifier_requests,
    "flow": _flow_requests,
    "sequence_vae": _sequence_requests,
}


def serving_inputs(model: keras.Model, data_dir: Optional[str] = None) -> Requests:
    """Inputs for every endpoint of the model's family: real test examples
    (classifier images, flow points `x`) and, for a flow's `sample`, seeded base noise."""
    config = model.zoo_config
    if config["family"] not in SERVING_REQUESTS:
        raise ValueError(f"No serving inputs for model family {config['family']!r}; "
                         f"families with serving inputs are {sorted(SERVING_REQUESTS)}.")
    inputs, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    return SERVING_REQUESTS[config["family"]](
        inputs[:SERVING_CHECK_EXAMPLES].astype(np.float32))


def export_and_check(model: keras.Model, directory: PathLike, version: int = 1,
                     data_dir: Optional[str] = None) -> Path:
    """Export for TF Serving and run every serving check on real examples."""
    path = export(model, directory, version)
    check_serving(path, model, serving_inputs(model, data_dir))
    return path


def training_evaluation_counts(config: Dict[str, Any], weights: PathLike,
                               data_dir: Optional[str] = None) -> Dict[str, float]:
    """The solver counts of one training step (train_forward_nfe, train_backward_nfe,
    train_forward_steps, train_backward_steps: whichever the model logs), measured
    with the recipe's training solver on a real batch."""
    model = load_run_weights(config, weights, config["training"].get("model_overrides"))
    arrays = family_arrays(config, config["dataset"]["train_split"], data_dir)
    batch = config["training"]["batch_size"]
    model.reset_metrics()
    inputs, *labels = [a[:batch] for a in arrays]
    logs = model.train_on_batch(inputs.astype(np.float32), *labels, return_dict=True)
    return {f"train_{solver_count_key(k)}": float(v) for k, v in logs.items()
            if solver_count_key(k)}


def solver_settings(model_config: Dict[str, Any], evaluation: bool) -> Dict[str, Any]:
    """The solver options in a model config. For `evaluation`: its `eval_`-prefixed
    `SOLVER_KEYS` when it has any (a model with its own evaluation solver), else
    the plain ones; for training: the plain ones and `adjoint`.

    Example:
        >>> config = {"method": "rk4", "num_steps": 8, "adjoint": True,
        ...           "eval_method": "dopri5", "eval_rtol": 1e-5, "hidden_units": [64]}
        >>> solver_settings(config, evaluation=True)
        {'method': 'dopri5', 'rtol': 1e-05}
        >>> solver_settings(config, evaluation=False)
        {'method': 'rk4', 'num_steps': 8, 'adjoint': True}
    """
    prefixed = {k: model_config[EVALUATION_PREFIX + k] for k in SOLVER_KEYS
                if EVALUATION_PREFIX + k in model_config}
    if evaluation and prefixed:
        return prefixed
    keys = SOLVER_KEYS if evaluation else SOLVER_KEYS + ("adjoint",)
    return {k: model_config[k] for k in keys if k in model_config}


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
        "evaluation": {**config["evaluation"],
                       "solver": solver_settings(config["model"]["config"], evaluation=True)},
        "data": config["dataset"],
        "training": {
            "command": f"ode-zoo train {name} --resume --publish",
            "epochs": len(record["history"]),
            "best_epoch": record["best_epoch"],
            f"best_{training.get('monitor', 'val_accuracy')}": record["best"],
            "wall_clock_hours": round(record["train_seconds"] / 3600, 3),
            "hardware": record["hardware"],
            **{k: training[k] for k in ("threads",) if k in training},
            "solver": solver_settings({**config["model"]["config"],
                                       **training.get("model_overrides", {})}, evaluation=False),
            **training_evaluation_counts(config, weights, data_dir),
        },
    }
    directory = Path(output) if output else default_output(config["name"])
    save_to_preset(model, directory, metadata)
    shutil.copy(run_dir / HISTORY, directory / TRAINING_HISTORY)
    export_and_check(model, directory / "serving", version=1, data_dir=data_dir)
    return directory
