"""Publishing a trained zoo model (`ode-zoo publish`, `ode-zoo train --publish`):
the run's best weights are evaluated with the config's protocol and written as
a new version k of `saved_models/<name>/` (`ode_zoo.zoo.versions`): the preset
`<name>/<k>/` — config, weights, metadata with every measured number and the
command that measured it, training history — and `<name>/serving/<k>/`, the TF
Serving export, checked the way the server loads it. Earlier versions are never
touched.

Example:
    >>> publish("odenet_mnist", run_dir="runs/odenet_mnist")        # doctest: +SKIP
    PosixPath('.../saved_models/odenet_mnist/2')
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.solvers import Solver
from ode_zoo.training.trainer import BEST_WEIGHTS, HISTORY
from ode_zoo.zoo.configs import load_config, zoo_dirs
from ode_zoo.zoo.evaluate import evaluate_model, solver_count_key
from ode_zoo.zoo.export import export
from ode_zoo.zoo.presets import save_to_preset
from ode_zoo.zoo.recipes import batch_arrays, build_model, compile_model, split_arrays
from ode_zoo.zoo.serving_checks import check_serving
from ode_zoo.zoo.versions import SERVING, next_version

SERVING_CHECK_EXAMPLES = 16
EVALUATION = "evaluation"      # a run's saved evaluation progress, while publishing
TRAINING_HISTORY = "training_history.json"   # the run's per-epoch metrics, kept with the preset
# A fixed-point solver's settings, recorded for models without an ODE `Solver` (DEQs).
FIXED_POINT_KEYS = ("method", "tol", "max_iter")
PathLike = Union[str, os.PathLike]
Requests = Dict[str, Dict[str, np.ndarray]]


def serving_inputs(model: keras.Model, data_dir: Optional[str] = None) -> Requests:
    """Inputs for every endpoint of the model (`model.serving_inputs`), made from
    real test examples (and, for a flow's `sample`, seeded base noise)."""
    config = model.zoo_config
    inputs, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    first = tf.nest.map_structure(lambda a: a[:SERVING_CHECK_EXAMPLES].astype(np.float32),
                                  inputs)
    return model.serving_inputs(first)


def export_and_check(model: keras.Model, directory: PathLike, version: int = 1,
                     data_dir: Optional[str] = None) -> Path:
    """Export for TF Serving and run every serving check on real examples; an export
    that fails its checks is removed, so a retry may use the same version."""
    path = export(model, directory, version)
    try:
        check_serving(path, model, serving_inputs(model, data_dir))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def training_evaluation_counts(config: Dict[str, Any], weights: PathLike,
                               data_dir: Optional[str] = None) -> Dict[str, float]:
    """The solver counts of one training step (train_forward_nfe, train_backward_nfe,
    train_forward_steps, train_backward_steps: whichever the model logs), measured
    with the recipe's training solver on a real batch."""
    model = load_run_weights(config, weights, config["training"].get("model_overrides"))
    arrays = batch_arrays(config, config["dataset"]["train_split"], data_dir)
    batch = config["training"]["batch_size"]
    model.reset_metrics()
    inputs, *labels = [tf.nest.map_structure(lambda a: a[:batch], part) for part in arrays]
    inputs = tf.nest.map_structure(lambda a: a.astype(np.float32), inputs)
    logs = model.train_on_batch(inputs, *labels, return_dict=True)
    return {f"train_{solver_count_key(k)}": float(v) for k, v in logs.items()
            if solver_count_key(k)}


def solver_record(model: keras.Model, evaluation: bool) -> Dict[str, Any]:
    """The solver settings a model evaluates (`evaluation`) or trains with, as
    metadata records them: its `eval_solver` for evaluation where it has one, else
    its `solver` (an ODE `Solver`'s settings that shape the solve: an evaluation's
    method, tolerances and grid; a training's method, grid or tolerances, and adjoint
    mode; a step bound only where it is not the default), else a fixed-point
    solver's settings.

    Example:
        >>> import ode_zoo
        >>> model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False)
        >>> solver_record(model, evaluation=True), solver_record(model, False)
        ({'method': 'dopri5', 'rtol': 1e-05, 'atol': 1e-05}, {'method': 'rk4', 'num_steps': 4, 'adjoint': True})
    """
    config = model.get_config()
    solver = config.get("eval_solver") if evaluation else None
    solver = solver or config.get("solver")
    if solver is None:
        return {k: config[k] for k in FIXED_POINT_KEYS if k in config}
    settings = Solver.from_config(solver)
    unused = {"max_num_steps"} if settings.max_num_steps == Solver.max_num_steps else set()
    if evaluation:
        unused |= {"adjoint", "adjoint_rtol", "adjoint_atol"}
    elif not settings.adaptive:
        unused |= {"rtol", "atol"}
    return {k: v for k, v in solver.items() if k not in unused}


def load_run_weights(config: Dict[str, Any], weights: PathLike,
                     overrides: Optional[Dict[str, Any]] = None) -> keras.Model:
    """The config's model with a training run's weights, then compiled (loading
    before compiling skips the run's optimizer state in the weights file)."""
    model = build_model(config, overrides)
    model.load_weights(str(weights))
    compile_model(model, config)
    return model


def default_output(name: str) -> Path:
    """The entry saved_models/<name> of this source checkout (or of the current directory)."""
    roots = zoo_dirs("saved_models")
    return (roots[-1] if roots else Path("saved_models")) / name


def publish(name: str, run_dir: PathLike, output: Optional[PathLike] = None,
            data_dir: Optional[str] = None) -> Path:
    """Evaluate the run's best weights and write them as the next version of the
    entry `output` (default: saved_models/<name>): its preset and serving export.
    Returns the new version's preset folder, named by its number. The evaluation saves
    its progress in `run_dir/evaluation/` after every batch, so publishing again after
    an interruption continues it (`ode_zoo.zoo.resumable`); a success removes it."""
    config = load_config(name)
    run_dir = Path(run_dir)
    weights = run_dir / BEST_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: train first with "
                                f"`ode-zoo train {name}`.")
    entry = Path(output) if output else default_output(config["name"])
    next_version(entry)                  # an entry in the old layout fails before evaluating
    record = json.loads((run_dir / HISTORY).read_text())
    model = load_run_weights(config, weights)
    # A long evaluation saves its progress in the run: an interrupted publish continues.
    metrics = evaluate_model(model, config, data_dir=data_dir, state_dir=run_dir / EVALUATION)
    training = config["training"]
    version = next_version(entry)
    metadata = {
        "version": version,
        "metrics": metrics,
        "metrics_command": f"ode-zoo eval {config['name']} --version {version}",
        "evaluation": {**config["evaluation"], "solver": solver_record(model, evaluation=True)},
        "data": config["dataset"],
        "training": {
            "command": f"ode-zoo train {name} --resume --publish",
            "epochs": len(record["history"]),
            "best_epoch": record["best_epoch"],
            f"best_{training.get('monitor', 'val_accuracy')}": record["best"],
            "wall_clock_hours": round(record["train_seconds"] / 3600, 3),
            "hardware": record["hardware"],
            **{k: training[k] for k in ("threads",) if k in training},
            "solver": solver_record(build_model(config, training.get("model_overrides")),
                                    evaluation=False),
            **training_evaluation_counts(config, weights, data_dir),
        },
    }
    served = export_and_check(model, entry / SERVING, version=version, data_dir=data_dir)
    try:
        # Written whole under a temporary name, then renamed: never over an existing version.
        preset = save_to_preset(model, entry / str(version), metadata,
                                extra_files={TRAINING_HISTORY: run_dir / HISTORY})
    except BaseException:
        shutil.rmtree(served, ignore_errors=True)
        raise
    shutil.rmtree(run_dir / EVALUATION, ignore_errors=True)
    return preset
