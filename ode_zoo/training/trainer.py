"""A resumable training loop for the zoo's Keras models, on one device or many.

Each step is the model's own `train_step` (so `model.fit` and this loop train
the same way), run on every replica of the strategy the model was built under
(`model.distribute_strategy`; see `distribute.py`), validation likewise with
`test_step`. Around it: a Keras progress bar, TensorBoard scalars, an atomic
checkpoint every `checkpoint_every` steps and at every epoch end, validation
after each epoch with the best weights kept, and exact resumption: the data
order of every epoch is fixed by (seed, epoch), so a resumed run continues with
the very batch after the last checkpoint. With several workers only the chief
keeps files; every worker resumes from the chief's checkpoint in `run_dir`.

Example:
    >>> with strategy.scope():                                              # doctest: +SKIP
    ...     model = build_and_compile()
    >>> trainer = Trainer(model, make_train_dataset, validation_dataset,   # doctest: +SKIP
    ...                   run_dir="runs/odenet_mnist", epochs=15, steps_per_epoch=430)
    >>> history = trainer.fit(resume=True)                                  # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Callable, Dict, List, Optional

import keras
import tensorflow as tf

from ode_zoo.training.checkpoints import atomic_write, load_checkpoint, save_checkpoint
from ode_zoo.training.distribute import (build_state, check_even_split, output_dir, replicated,
                                         split_batches)

CHECKPOINT = "checkpoint.npz"
BEST_WEIGHTS = "best.weights.h5"
HISTORY = "history.json"


def hardware_description() -> str:
    """CPU model and core count of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


class Trainer:
    """Trains `model` (compiled) for `epochs` epochs of `steps_per_epoch` steps.

    Args:
      model: a Keras model, created and compiled inside `strategy.scope()` of the
        strategy to train with (outside any scope: one device).
      train_dataset: `fn(epoch, skip_batches) -> tf.data.Dataset` of that epoch's
        global batches in a fixed order, starting after `skip_batches` batches.
        Each batch is split evenly over the replicas (see `split_batches`).
      validation_dataset: batches to evaluate after each epoch, or None.
      run_dir: where the checkpoint, best weights, history and logs go. Only the
        chief writes there; with several workers every one of them must be able
        to read it, as each resumes from the chief's checkpoint.
      epochs, steps_per_epoch: length of training.
      checkpoint_every: steps between checkpoints (also written at epoch ends).
      monitor, mode: validation metric selecting the best weights ("max"/"min").
      verbose: 1 shows a progress bar per epoch, 0 is silent.
    """

    def __init__(self, model: keras.Model, train_dataset: Callable[[int, int], tf.data.Dataset],
                 validation_dataset: Optional[tf.data.Dataset], run_dir: str, epochs: int,
                 steps_per_epoch: int, checkpoint_every: int = 200,
                 monitor: str = "val_accuracy", mode: str = "max", verbose: int = 1):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}.")
        self.model = model
        self.train_dataset = train_dataset
        self.validation_dataset = validation_dataset
        self.run_dir = run_dir
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self.checkpoint_every = int(checkpoint_every)
        self.strategy = model.distribute_strategy
        self.monitor, self.mode = monitor, mode
        self.verbose = verbose if self.strategy.extended.should_checkpoint else 0
        self._train_step = replicated(model, model.train_step)
        self._test_step = replicated(model, model.test_step)

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.run_dir, CHECKPOINT)

    def _initial_state(self, resume: bool) -> Dict[str, Any]:
        fresh = {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "history": [],
                 "train_seconds": 0.0, "hardware": hardware_description()}
        if resume and os.path.exists(self.checkpoint_path):
            state = load_checkpoint(self.checkpoint_path, self.model)
            if self.verbose:
                print(f"Resuming from {self.checkpoint_path}: epoch {state['epoch'] + 1}, "
                      f"step {state['step']}.")
            return state
        if resume and self.verbose:
            print(f"No checkpoint in {self.run_dir}; starting from scratch.")
        return fresh

    def _save(self, state: Dict[str, Any]) -> None:
        save_checkpoint(os.path.join(self._output_dir, CHECKPOINT), self.model, state)

    def _improved(self, value: float, best: Optional[float]) -> bool:
        return best is None or (value > best if self.mode == "max" else value < best)

    def fit(self, resume: bool = False) -> List[Dict[str, float]]:
        """Train to the end (from the last checkpoint with `resume=True`);
        returns the per-epoch history of train and validation metrics."""
        # Every variable exists before a checkpoint loads into the model (a subclassed
        # model has none until built) and before a step is traced (see build_state).
        build_state(self.model, self.train_dataset(0, 0).element_spec)
        with output_dir(self.strategy, self.run_dir) as self._output_dir:
            self._writer = tf.summary.create_file_writer(os.path.join(self._output_dir, "logs"))
            try:
                state = self._initial_state(resume)
                while state["epoch"] < self.epochs:
                    self._run_epoch(state)
            finally:
                self._writer.close()
        return state["history"]

    def _validate(self) -> Dict[str, float]:
        self.model.reset_metrics()
        logs: Dict[str, tf.Tensor] = {}
        for batch in split_batches(self.strategy, self.validation_dataset):
            logs = self._test_step(batch)
        return {k: float(v) for k, v in logs.items()}

    def _run_epoch(self, state: Dict[str, Any]) -> None:
        epoch = state["epoch"]
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}")
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=self.verbose)
        self.model.reset_metrics()
        started = time.time()
        logs: Dict[str, float] = {}
        batches = self.train_dataset(epoch, state["step"]).take(
            self.steps_per_epoch - state["step"])
        check_even_split(batches, self.strategy.num_replicas_in_sync)
        for batch in split_batches(self.strategy, batches):
            logs = {k: float(v) for k, v in self._train_step(batch).items()}
            state["step"] += 1
            bar.update(state["step"], list(logs.items()))
            global_step = epoch * self.steps_per_epoch + state["step"]
            if state["step"] % 50 == 0:
                with self._writer.as_default(step=global_step):
                    for name, value in logs.items():
                        tf.summary.scalar(f"train/{name}", value)
            if state["step"] % self.checkpoint_every == 0 and state["step"] < self.steps_per_epoch:
                state["train_seconds"] += time.time() - started
                started = time.time()
                self._save(state)
        state["train_seconds"] += time.time() - started
        record = {"epoch": epoch + 1, **logs}
        if self.validation_dataset is not None:
            val = self._validate()
            record.update({f"val_{k}": float(v) for k, v in val.items()})
            with self._writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
                for name, value in val.items():
                    tf.summary.scalar(f"validation/{name}", value)
            if self.verbose:
                print("  validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
            if self.monitor in record and self._improved(record[self.monitor], state["best"]):
                state["best"], state["best_epoch"] = record[self.monitor], epoch + 1
                tmp = os.path.join(self._output_dir, f"tmp-{os.getpid()}.weights.h5")
                self.model.save_weights(tmp)
                os.replace(tmp, os.path.join(self._output_dir, BEST_WEIGHTS))
        state["history"].append(record)
        state["epoch"], state["step"] = epoch + 1, 0
        self._save(state)
        atomic_write(os.path.join(self._output_dir, HISTORY), json.dumps(
            {k: state[k] for k in ("history", "best", "best_epoch", "train_seconds", "hardware")},
            indent=1).encode())
