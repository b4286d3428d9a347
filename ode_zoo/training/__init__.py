"""Training: the resumable loop and its atomic checkpoints."""
from ode_zoo.training.checkpoints import (IncompatibleCheckpointError, load_checkpoint,
                                          save_checkpoint)
from ode_zoo.training.trainer import Trainer

__all__ = ["Trainer", "save_checkpoint", "load_checkpoint", "IncompatibleCheckpointError"]
