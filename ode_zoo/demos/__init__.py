"""Small end-to-end demos run by ``ode-zoo demo``.

Example:
    >>> from ode_zoo.demos import run_spiral_demo
    >>> run_spiral_demo("spiral.png", epochs=1, verbose=0).output.name
    'spiral.png'
"""

from ode_zoo.demos.spiral import SpiralResult, run_spiral_demo

__all__ = ["SpiralResult", "run_spiral_demo"]
