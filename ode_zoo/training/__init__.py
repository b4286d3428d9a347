"""Training: the resumable loop, its atomic checkpoints and distribution strategies."""
from ode_zoo.training.checkpoints import (IncompatibleCheckpointError, load_checkpoint,
                                          save_checkpoint)
from ode_zoo.training.distribute import STRATEGIES, make_strategy
from ode_zoo.training.trainer import Trainer

__all__ = ["Trainer", "save_checkpoint", "load_checkpoint", "IncompatibleCheckpointError",
           "make_strategy", "STRATEGIES"]
