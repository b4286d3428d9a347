"""A resumable training loop for the zoo's Keras models, on one device or many.

Each step is the model's own `train_step` (so `model.fit` and this loop train
the same way), run on every replica of the strategy the model was built under
(`model.distribute_strategy`; see `distribute.py`), validation likewise with
`test_step`. Around it: a Keras progress bar (the metrics updated so far, with
the solver's evaluation counts when the model logs them, and an estimate of the
run's remaining time at each epoch start), TensorBoard scalars, an atomic
checkpoint every `checkpoint_every` steps and at every epoch end, validation
after each epoch with the best weights kept, and exact resumption: the data
order of every epoch is fixed by (seed, epoch), so a resumed run continues with
the very batch after the last checkpoint, and the checkpoint holds the running
epoch's metric state, so a resumed epoch records the averages of an
uninterrupted one. Ctrl-C stops at the end of the running step (twice: at once)
and, like any KeyboardInterrupt in the loop, writes a checkpoint at the current
step and raises `TrainingInterrupted`. With several workers only the chief keeps
files; every worker resumes from the chief's checkpoint in `run_dir`.

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
import shutil
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.solvers.errors import solver_errors
from ode_zoo.training.checkpoints import (atomic_write, load_checkpoint, metric_variables,
                                          remove_stale_temp_files, save_checkpoint)
from ode_zoo.training.distribute import (build_state, check_even_split, output_dir, replicated,
                                         split_batches)

CHECKPOINT = "checkpoint.npz"
BEST_WEIGHTS = "best.weights.h5"
HISTORY = "history.json"
LOGS = "logs"


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `Trainer.fit`, raised after the checkpoint of the current
    step was written to `checkpoint` (a resumed run continues with the next batch)."""

    def __init__(self, message: str, checkpoint: str):
        super().__init__(message)
        self.checkpoint = checkpoint


def hardware_description() -> str:
    """CPU model and core count of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


def run_files(run_dir: str) -> List[str]:
    """The files of an earlier run in `run_dir` that a fresh start would overwrite.

    Example:
        >>> run_files("/no/such/run")
        []
    """
    return [name for name in (CHECKPOINT, BEST_WEIGHTS)
            if os.path.exists(os.path.join(run_dir, name))]


def clear_run(run_dir: str) -> None:
    """Delete an earlier run's checkpoint, best weights, history and TensorBoard logs
    from `run_dir` (other files stay)."""
    for name in (CHECKPOINT, BEST_WEIGHTS, HISTORY):
        try:
            os.remove(os.path.join(run_dir, name))
        except FileNotFoundError:
            pass
    shutil.rmtree(os.path.join(run_dir, LOGS), ignore_errors=True)


def format_duration(seconds: float) -> str:
    """A duration for people.

    Example:
        >>> format_duration(42), format_duration(754), format_duration(11000)
        ('42 s', '13 min', '3 h 03 min')
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class UpdatedMetrics:
    """Which of the model's metrics a phase (training or validation, since the last
    `reset_metrics`) updated: a metric with a `count` variable (a Keras `Mean`,
    `MeanMetricWrapper` such as accuracy, the zoo's evaluation counts) is updated
    once its count is above 0; metrics without one count as updated. `filter`
    drops the logs of the others, such as the loss and backward solves'
    evaluation counts during validation.

    Example:
        >>> tracker = UpdatedMetrics(model)                  # doctest: +SKIP
        >>> tracker.filter(model.get_metrics_result())       # doctest: +SKIP
        {'nll': ..., 'nfe': ...}
    """

    def __init__(self, model: keras.Model):
        self._counts: Dict[str, Any] = {}
        pending = list(model.metrics)
        while pending:
            metric = pending.pop(0)
            inner = getattr(metric, "metrics", None)   # CompileMetrics: the compiled metrics
            if isinstance(inner, (list, tuple)) and inner and not any(m is metric for m in inner):
                pending.extend(inner)
                continue
            count = next((v for v in metric.variables if v.name == "count"), None)
            if count is not None:
                self._counts[metric.name] = count
        self._updated: set = set()

    def filter(self, logs: Mapping[str, float]) -> Dict[str, float]:
        """`logs` without the metrics not updated yet (the counts are only read
        until a metric was seen updated: they do not fall before a reset)."""
        for name, count in self._counts.items():
            if name not in self._updated and float(count.numpy()) > 0:
                self._updated.add(name)
        return {k: v for k, v in logs.items() if k not in self._counts or k in self._updated}


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
      checkpoint_every: steps between checkpoints (also written at epoch ends and
        on Ctrl-C).
      monitor, mode: validation metric selecting the best weights ("max"/"min").
      verbose: 1 shows a progress bar per epoch, 0 is silent.
      resume_command: how to resume this run, printed when Ctrl-C stops it (e.g.
        "ode-zoo train odenet_mnist --resume").
    """

    def __init__(self, model: keras.Model, train_dataset: Callable[[int, int], tf.data.Dataset],
                 validation_dataset: Optional[tf.data.Dataset], run_dir: str, epochs: int,
                 steps_per_epoch: int, checkpoint_every: int = 200,
                 monitor: str = "val_accuracy", mode: str = "max", verbose: int = 1,
                 resume_command: Optional[str] = None):
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
        self.resume_command = resume_command or "Trainer.fit(resume=True)"
        self._train_step = replicated(model, model.train_step)
        self._test_step = replicated(model, model.test_step)
        # Where the running epoch stands: (state step, optimizer iterations) when its
        # loop started (None outside the loop), and the training metrics' values kept
        # while validation reuses the metrics (None outside validation).
        self._marks: Optional[tuple] = None
        self._stop_requested = False
        self._bar_open = False          # a progress bar line waits for its next update
        self._train_metrics: Optional[List[np.ndarray]] = None
        self._clock = time.time()
        # Seconds and count of this process's steps after its first (which traces).
        self._timed_steps: Optional[tuple] = None

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

    def _save(self, state: Dict[str, Any],
              metrics: Optional[Sequence[np.ndarray]] = None) -> None:
        save_checkpoint(os.path.join(self._output_dir, CHECKPOINT), self.model, state,
                        metrics=metrics)

    def _write_history(self, state: Dict[str, Any]) -> None:
        atomic_write(os.path.join(self._output_dir, HISTORY), json.dumps(
            {k: state[k] for k in ("history", "best", "best_epoch", "train_seconds", "hardware")},
            indent=1).encode())

    def _improved(self, value: float, best: Optional[float]) -> bool:
        return best is None or (value > best if self.mode == "max" else value < best)

    def fit(self, resume: bool = False, overwrite: bool = False) -> List[Dict[str, float]]:
        """Train to the end (from the last checkpoint with `resume=True`);
        returns the per-epoch history of train and validation metrics.

        Without `resume`, a `run_dir` holding an earlier run's checkpoint or best
        weights raises FileExistsError, unless `overwrite=True` deletes them (and
        its history and logs) first. Temporary files that ended processes left in
        the run directory are removed. Ctrl-C stops at the end of the running step
        (a second Ctrl-C at once), writes a checkpoint at the current step, prints
        where and how to resume, and raises `TrainingInterrupted`.
        """
        if resume and overwrite:
            raise ValueError("resume=True continues the run in the run directory, "
                             "overwrite=True deletes it: pass one of them.")
        if not (resume or overwrite) and run_files(self.run_dir):
            raise FileExistsError(
                f"{self.run_dir} already holds a training run "
                f"({', '.join(run_files(self.run_dir))}): continue it with resume=True, "
                "start over with overwrite=True (deletes its checkpoint, best weights and "
                "history) or choose another run_dir.")
        # Every variable exists before a checkpoint loads into the model (a subclassed
        # model has none until built) and before a step is traced (see build_state).
        build_state(self.model, self.train_dataset(0, 0).element_spec)
        with output_dir(self.strategy, self.run_dir) as self._output_dir:
            removed = remove_stale_temp_files(self._output_dir)
            if removed and self.verbose:
                print(f"Removed temporary files of ended runs from {self._output_dir}: "
                      f"{', '.join(removed)}.")
            if overwrite:
                clear_run(self._output_dir)
            self._writer = tf.summary.create_file_writer(os.path.join(self._output_dir, LOGS))
            try:
                state = self._initial_state(resume)
                handler = self._catch_ctrl_c()
                try:
                    while state["epoch"] < self.epochs:
                        with solver_errors():     # a failed solve as its ODESolverError
                            self._run_epoch(state)
                except KeyboardInterrupt:
                    self._interrupted(state)
                finally:
                    if handler is not None:
                        signal.signal(signal.SIGINT, handler)
            finally:
                self._writer.close()
        return state["history"]

    def _catch_ctrl_c(self) -> Optional[Any]:
        """While the loop runs, a first Ctrl-C stops it at the end of the running step
        (or validation batch), a second one at once; returns the handler to restore,
        or None when Python's default one was not installed (SIGINT ignored, another
        handler, not the main thread): then KeyboardInterrupt comes as it does.

        A KeyboardInterrupt raised inside a finalizer (`__del__`, as of TensorFlow's
        function garbage collector) is printed and dropped by Python: the flag still
        stops the loop at the next step.
        """
        self._stop_requested = False
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            return None

        def stop(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        return signal.signal(signal.SIGINT, stop)

    def _check_stop(self) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt

    def _iterations(self) -> Optional[int]:
        iterations = getattr(self.model.optimizer, "iterations", None)
        return None if iterations is None else int(iterations.numpy())

    def _steps_done(self, state: Dict[str, Any]) -> int:
        """The running epoch's steps whose update the variables hold. A Ctrl-C right
        after a step's update and before the loop counted it leaves one more
        optimizer iteration than counted steps since the loop started: that step
        counts (it is in the weights, optimizer and metrics)."""
        if self._marks is None:
            return state["step"]
        step, iterations = self._marks
        now = self._iterations()
        if iterations is not None and now is not None and (
                now - iterations == state["step"] - step + 1):
            return state["step"] + 1
        return state["step"]

    def _account_time(self, state: Dict[str, Any]) -> None:
        now = time.time()
        state["train_seconds"] += now - self._clock
        self._clock = now

    def _interrupted(self, state: Dict[str, Any]) -> NoReturn:
        """Write the checkpoint of the current step (Ctrl-C held off meanwhile), say
        where and how to resume, and raise TrainingInterrupted."""
        main_thread = threading.current_thread() is threading.main_thread()
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
        self._stop_requested = False
        try:
            if self._train_metrics is None:       # interrupted while training
                state["step"] = self._steps_done(state)
                self._account_time(state)
            self._marks = None
            self._save(state, metrics=self._train_metrics)
            self._write_history(state)
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, handler)
        path = os.path.join(self._output_dir, CHECKPOINT)
        message = (f"Interrupted: saved the checkpoint of epoch {state['epoch'] + 1}, step "
                   f"{state['step']}/{self.steps_per_epoch} to {path}; resume with: "
                   f"{self.resume_command}")
        if self.strategy.extended.should_checkpoint:
            print(("\n" if self._bar_open else "") + message, flush=True)
        raise TrainingInterrupted(message, path) from None

    def _estimate(self, state: Dict[str, Any]) -> str:
        """" (about 1 h 05 min left at 2.3 s/step)" once steps were timed, else "".
        Seconds per step are this process's after its first step (which traces the
        step function), else the run's so far."""
        done = state["epoch"] * self.steps_per_epoch + state["step"]
        if self._timed_steps and self._timed_steps[1]:
            per_step = self._timed_steps[0] / self._timed_steps[1]
        elif done and state.get("train_seconds"):
            per_step = state["train_seconds"] / done
        else:
            return ""
        seconds = ((self.epochs * self.steps_per_epoch - done) * per_step
                   + (self.epochs - state["epoch"]) * state.get("validation_seconds", 0.0))
        return f" (about {format_duration(seconds)} left at {per_step:.3g} s/step)"

    def _validate(self) -> Dict[str, float]:
        self.model.reset_metrics()
        updated = UpdatedMetrics(self.model)
        logs: Dict[str, tf.Tensor] = {}
        for batch in split_batches(self.strategy, self.validation_dataset):
            logs = self._test_step(batch)
            self._check_stop()
        return updated.filter({k: float(v) for k, v in logs.items()})

    def _metric_logs(self) -> Dict[str, float]:
        with self.strategy.scope():
            return {k: float(v) for k, v in self.model.get_metrics_result().items()}

    def _train_steps(self, state: Dict[str, Any], bar: keras.utils.Progbar,
                     updated: UpdatedMetrics) -> None:
        """The running epoch's remaining steps, with their checkpoints."""
        epoch = state["epoch"]
        batches = self.train_dataset(epoch, state["step"]).take(
            self.steps_per_epoch - state["step"])
        check_even_split(batches, self.strategy.num_replicas_in_sync)
        self._marks = (state["step"], self._iterations())
        last = time.time()
        for batch in split_batches(self.strategy, batches):
            logs = {k: float(v) for k, v in self._train_step(batch).items()}
            state["step"] += 1
            now = time.time()
            if self._timed_steps is not None:
                self._timed_steps = (self._timed_steps[0] + now - last, self._timed_steps[1] + 1)
            else:
                self._timed_steps = (0.0, 0)
            last = now
            logs = updated.filter(logs)
            bar.update(state["step"], list(logs.items()))
            self._bar_open = bool(self.verbose) and state["step"] < self.steps_per_epoch
            global_step = epoch * self.steps_per_epoch + state["step"]
            if state["step"] % 50 == 0:
                with self._writer.as_default(step=global_step):
                    for name, value in logs.items():
                        tf.summary.scalar(f"train/{name}", value)
            if state["step"] % self.checkpoint_every == 0 and state["step"] < self.steps_per_epoch:
                self._account_time(state)
                self._save(state)
            self._check_stop()

    def _run_epoch(self, state: Dict[str, Any]) -> None:
        self._marks = self._train_metrics = None
        self._check_stop()
        epoch = state["epoch"]
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}{self._estimate(state)}")
        bar = keras.utils.Progbar(self.steps_per_epoch, verbose=self.verbose,
                                  stateless_metrics=())   # logs are already epoch means
        if state["step"] == 0:
            self.model.reset_metrics()
        # else: resumed mid-epoch, the checkpoint restored the epoch's running metrics
        updated = UpdatedMetrics(self.model)
        self._clock = time.time()
        if state["step"] < self.steps_per_epoch:   # else resumed after the epoch's last step
            self._train_steps(state, bar, updated)
        self._account_time(state)
        self._marks = None
        # The epoch's training metrics, kept for a checkpoint written during validation.
        self._train_metrics = [v.numpy() for v in metric_variables(self.model)]
        record = {"epoch": epoch + 1, **updated.filter(self._metric_logs())}
        best, best_epoch = state["best"], state["best_epoch"]
        validation_seconds = state.get("validation_seconds", 0.0)
        if self.validation_dataset is not None:
            started = time.time()
            val = self._validate()
            validation_seconds = time.time() - started
            record.update({f"val_{k}": float(v) for k, v in val.items()})
            with self._writer.as_default(step=(epoch + 1) * self.steps_per_epoch):
                for name, value in val.items():
                    tf.summary.scalar(f"validation/{name}", value)
            if self.verbose:
                print("  validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
            if self.monitor in record and self._improved(record[self.monitor], best):
                tmp = os.path.join(self._output_dir, f"tmp-{os.getpid()}.weights.h5")
                try:
                    self.model.save_weights(tmp)
                    os.replace(tmp, os.path.join(self._output_dir, BEST_WEIGHTS))
                except BaseException:
                    if os.path.exists(tmp):
                        os.remove(tmp)
                    raise
                best, best_epoch = record[self.monitor], epoch + 1
        # One update commits the epoch: a Ctrl-C before it repeats the validation.
        state.update(history=state["history"] + [record], best=best, best_epoch=best_epoch,
                     validation_seconds=validation_seconds, epoch=epoch + 1, step=0)
        self._train_metrics = None
        self._save(state)
        self._write_history(state)
