"""ode_zoo: continuous-depth models for Keras 3 / TensorFlow.

Example:
    >>> import tensorflow as tf
    >>> import ode_zoo
    >>> ys = ode_zoo.odeint(lambda t, y: -y, tf.ones([3]), tf.constant([0.0, 1.0]))
    >>> ys.shape
    TensorShape([2, 3])
    >>> result = ode_zoo.fixed_point(lambda z: 0.5 * z + 1.0, tf.zeros([2, 1]))
    >>> result.z.numpy().round(3).ravel().tolist()
    [2.0, 2.0]
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False)   # a compiled Keras model
"""
__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) buries the CLI's
# output; a user's own setting wins.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with C++ logs below TF_CPP_MIN_LOG_LEVEL
    (and, from level 2, CUDA probe errors of a machine without a GPU) filtered out.

    TensorFlow's libraries log through absl before `absl::InitializeLog()`, which
    ignores TF_CPP_MIN_LOG_LEVEL: the "I0000 ... port.cc] oneDNN ..." and
    "cudart_stub.cc] Could not find cuda drivers" lines of every import. So file
    descriptor 2 goes to a temporary file meanwhile, and every other line is
    written back to stderr. Level 0 or an already imported TensorFlow: no change.
    """
    import re
    import sys
    import tempfile
    try:
        level = int(_os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        level = 0
    if level < 1 or "tensorflow" in sys.modules:
        return
    header = re.compile(r"([IWEF])\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\] "
                        r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) \S+:\d+\] ")
    cuda_probe = re.compile(r"cuInit|cuda|cuDNN|cuFFT|cuBLAS|cudart", re.IGNORECASE)

    def unwanted(line: str) -> bool:
        match = header.match(line)
        severity = "IWEF".index(match.group(1) or match.group(2))
        return severity < level or (severity == 2 and level >= 2
                                    and bool(cuda_probe.search(line)))

    try:
        sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError, AttributeError):    # no usable stderr: nothing to filter
        return
    with tempfile.TemporaryFile() as capture:
        _os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf
            tf.config.list_physical_devices()        # the CUDA probe logs here
        finally:
            try:
                sys.stderr.flush()
            finally:
                _os.dup2(saved, 2)
                _os.close(saved)
            capture.seek(0)
            kept, dropping = [], False
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if line.startswith("WARNING: All log messages before absl::InitializeLog()"):
                    continue
                if header.match(line):
                    dropping = unwanted(line)
                if not dropping:               # a record's continuation lines go with it
                    kept.append(line)
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


_import_tensorflow_quietly()

from ode_zoo.solvers import (MaxStepsExceededError, NonFiniteStateError, ODESolverError,
                             SolveStats, Solver, StatsRecorder, StepSizeTooSmallError,
                             solver_errors)
from ode_zoo.layers.keras_field import odeint
from ode_zoo.equilibrium import FixedPointResult, fixed_point
from ode_zoo.zoo import export, list_models, load, save_to_preset

__all__ = ["__version__", "odeint", "Solver", "save_to_preset", "SolveStats", "StatsRecorder", "ODESolverError",
           "MaxStepsExceededError", "StepSizeTooSmallError", "NonFiniteStateError", "solver_errors",
           "fixed_point", "FixedPointResult", "load", "list_models", "export"]
