"""Training: the resumable loop, its atomic checkpoints and distribution strategies."""
from ode_zoo.training.checkpoints import (IncompatibleCheckpointError, load_checkpoint,
                                          remove_stale_temp_files, save_checkpoint)
from ode_zoo.training.distribute import STRATEGIES, make_strategy
from ode_zoo.training.trainer import Trainer, TrainingInterrupted, clear_run, run_files

__all__ = ["Trainer", "TrainingInterrupted", "save_checkpoint", "load_checkpoint",
           "IncompatibleCheckpointError", "remove_stale_temp_files", "run_files", "clear_run",
           "make_strategy", "STRATEGIES"]
