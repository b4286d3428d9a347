"""`train(name_or_config)`: the zoo's training entry point (`ode-zoo train`).

Example:
    >>> history = train("odenet_mnist", run_dir="runs/odenet_mnist", resume=True)  # doctest: +SKIP
    >>> history = train("odenet_mnist", strategy="mirrored")                       # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import tensorflow as tf

from ode_zoo.training import Trainer, make_strategy
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


def train(name_or_config: str, run_dir: Optional[str] = None, resume: bool = False,
          data_dir: Optional[str] = None, epochs: Optional[int] = None,
          verbose: int = 1, strategy: Optional[str] = None) -> List[Dict[str, Any]]:
    """Train a zoo model with its config's recipe; returns the epoch history.

    The run directory (default `runs/<name>`) receives the checkpoint, the best
    weights by validation metric, `history.json` and TensorBoard logs.
    `strategy` is None (one device), "mirrored" or "multiworker" (see
    `ode_zoo.training.make_strategy`); the config's `batch_size` is the global
    batch, split evenly over the replicas, so any strategy trains like one device.
    A recipe's `threads` limits TensorFlow's CPU threads (see `limit_threads`; with
    the default strategy only, as the others start TensorFlow).
    """
    distribution = make_strategy(strategy)     # first: multiworker needs a fresh runtime
    config = load_config(name_or_config)
    training = config["training"]
    if "threads" in training:                  # the default strategy has not started TF
        limit_threads(training["threads"])
    train_dataset, steps_per_epoch, validation = training_data(config, data_dir)
    with distribution.scope():
        model = build_model(config, training.get("model_overrides"))
        compile_model(model, config, steps_per_epoch)
    trainer = Trainer(model, train_dataset, validation, run_dir or f"runs/{config['name']}",
                      epochs=epochs or training["epochs"], steps_per_epoch=steps_per_epoch,
                      checkpoint_every=training.get("checkpoint_every", 200),
                      monitor=training.get("monitor", "val_accuracy"),
                      mode=training.get("mode", "max"), verbose=verbose)
    return trainer.fit(resume=resume)
