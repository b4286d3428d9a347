"""`portable_graphs()`: a context in which layers trace graphs that run anywhere.

Some layers compile parts of their call with XLA where that is faster (`DEQBlock`'s
forward solve). TF Serving runs XLA-compiled functions only when started with
`--xla_cpu_compilation_enabled`, so `ode_zoo.export` traces its serving signatures
inside `portable_graphs()`, where `xla_allowed()` is False and those layers trace
plain TensorFlow ops instead (same results, up to rounding).

Example:
    >>> xla_allowed()
    True
    >>> with portable_graphs():
    ...     xla_allowed()
    False
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_state = threading.local()


@contextlib.contextmanager
def portable_graphs() -> Iterator[None]:
    """Within the block (in this thread), layers trace no XLA-compiled functions."""
    previous = getattr(_state, "portable", False)
    _state.portable = True
    try:
        yield
    finally:
        _state.portable = previous


def xla_allowed() -> bool:
    """False inside `portable_graphs()`."""
    return not getattr(_state, "portable", False)
