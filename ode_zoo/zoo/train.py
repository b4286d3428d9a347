"""`train(name_or_config)`: the zoo's training entry point (`ode-zoo train`).

Example:
    >>> history = train("odenet_mnist", run_dir="runs/odenet_mnist", resume=True)  # doctest: +SKIP
    >>> history = train("odenet_mnist", strategy="mirrored")                       # doctest: +SKIP
    >>> history = train("odenet_mnist", overwrite=True)     # start over  # doctest: +SKIP
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional

import keras
import tensorflow as tf

from ode_zoo.training import Trainer, make_strategy, run_files
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.recipes import build_model, compile_model, training_data


def limit_threads(threads: int) -> None:
    """Run TensorFlow's ops on at most `threads` CPU threads (intra- and inter-op
    pools), as a recipe's `threads` asks; TensorFlow must not have started yet
    (setting the value it already has is fine)."""
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}.")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError as e:
        raise RuntimeError(f"The recipe asks for threads={threads}, but TensorFlow already "
                           f"started with other thread pools ({e}); train in a fresh process "
                           "or drop `threads` from the config.") from e


def resume_command(name_or_config: str, run_dir: str, epochs: Optional[int] = None,
                   strategy: Optional[str] = None, data_dir: Optional[str] = None) -> str:
    """The `ode-zoo train` command resuming a run.

    Example:
        >>> resume_command("odenet_mnist", "runs/odenet_mnist")
        'ode-zoo train odenet_mnist --resume'
        >>> resume_command("my config.json", "/tmp/run", epochs=3)
        "ode-zoo train 'my config.json' --resume --run-dir /tmp/run --epochs 3"
    """
    words = ["ode-zoo", "train", name_or_config, "--resume"]
    if Path(run_dir) != Path("runs") / Path(name_or_config).stem:    # not the CLI's default
        words += ["--run-dir", str(run_dir)]
    if epochs:
        words += ["--epochs", str(epochs)]
    if strategy not in (None, "default"):
        words += ["--strategy", strategy]
    if data_dir:
        words += ["--data-dir", str(data_dir)]
    return " ".join(shlex.quote(word) for word in words)


def train(name_or_config: str, run_dir: Optional[str] = None, resume: bool = False,
          data_dir: Optional[str] = None, epochs: Optional[int] = None,
          verbose: int = 1, strategy: Optional[str] = None,
          overwrite: bool = False) -> List[Dict[str, Any]]:
    """Train a zoo model with its config's recipe; returns the epoch history.

    The run directory (default `runs/<name>`) receives the checkpoint, the best
    weights by validation metric, `history.json` and TensorBoard logs. When it
    already holds a run (a checkpoint or best weights), `resume=True` continues
    it and `overwrite=True` deletes it and starts over; with neither, FileExistsError.
    `strategy` is None (one device), "mirrored" or "multiworker" (see
    `ode_zoo.training.make_strategy`); the config's `batch_size` is the global
    batch, split evenly over the replicas, so any strategy trains like one device.
    A recipe's `threads` limits TensorFlow's CPU threads (see `limit_threads`; with
    the default strategy only, as the others start TensorFlow). Ctrl-C writes a
    checkpoint at the current step and raises `ode_zoo.training.TrainingInterrupted`
    (a KeyboardInterrupt) after printing the command resuming the run.
    """
    distribution = make_strategy(strategy)     # first: multiworker needs a fresh runtime
    if resume and overwrite:
        raise ValueError("--resume continues the run in the run directory and --overwrite "
                         "deletes it: pass one of them.")
    config = load_config(name_or_config)
    run_dir = str(run_dir or f"runs/{config['name']}")
    existing = run_files(run_dir)
    if existing and not (resume or overwrite):    # before the data loads: refuse at once
        raise FileExistsError(
            f"{run_dir} already holds a training run ({', '.join(existing)}): add --resume "
            "to continue it, --overwrite to start over (deleting its checkpoint, best "
            "weights and history), or pick another --run-dir.")
    training = config["training"]
    if "threads" in training:                  # the default strategy has not started TF
        limit_threads(training["threads"])
    train_dataset, steps_per_epoch, validation = training_data(config, data_dir)
    # Weight initialization and every unseeded random op follow the recipe's seed, so two
    # fresh runs of one recipe on one machine give the same weights and history.
    keras.utils.set_random_seed(training.get("seed", 0))
    with distribution.scope():
        model = build_model(config, training.get("model_overrides"))
        compile_model(model, config, steps_per_epoch)
    trainer = Trainer(model, train_dataset, validation, run_dir,
                      epochs=epochs or training["epochs"], steps_per_epoch=steps_per_epoch,
                      checkpoint_every=training.get("checkpoint_every", 200),
                      monitor=training.get("monitor", "val_accuracy"),
                      mode=training.get("mode", "max"), verbose=verbose,
                      resume_command=resume_command(name_or_config, run_dir, epochs, strategy,
                                                    data_dir))
    return trainer.fit(resume=resume, overwrite=overwrite)
