"""`Solver`: every setting of an ODE solve in one immutable, serializable object.

`odeint`, `ODEBlock`, the `FFJORD` bijector and the zoo's models take a
`Solver` (or its config dict); a model with a training and an evaluation solver
takes two (`solver`, `eval_solver`). Its options are checked once, here.

Example:
    >>> solver = Solver("rk4", num_steps=4)
    >>> solver.get_config()["num_steps"], Solver.from_config(solver.get_config()) == solver
    (4, True)
    >>> solver.replace(method="dopri5", num_steps=None).adaptive
    True
    >>> Solver("rk4")
    Traceback (most recent call last):
    ...
    ValueError: Method 'rk4' has no error estimate: pass step_size or num_steps, or choose an adaptive method (['bosh3', 'dopri5', 'tsit5']).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Union

from ode_zoo.solvers.tableaus import TABLEAUS

ADJOINT_MODES = (False, True, "seminorm")
SolverLike = Union["Solver", Mapping[str, Any], None]


def solver_settings(options: Dict[str, Any]) -> Dict[str, Any]:
    """Remove and return the `Solver` settings among keyword arguments (the rest, e.g.
    a Keras layer's `name`, stay in `options`)."""
    return {k: options.pop(k) for k in list(options) if k in SOLVER_SETTINGS}


@dataclasses.dataclass(frozen=True)
class Solver:
    """The settings of an ODE solve.

    Attributes:
      method: "euler", "midpoint", "rk4" (3/8 rule) or one of the adaptive embedded
        pairs "bosh3", "dopri5", "tsit5". Any method runs on a fixed grid when
        `step_size` or `num_steps` is given.
      rtol, atol: error tolerances of adaptive steps.
      step_size: fixed-grid step bound; each output interval is cut into the fewest
        equal steps no longer than it.
      num_steps: fixed-grid steps over the whole time span (instead of step_size).
      adjoint: False backpropagates through the solver; True uses the adjoint method
        (memory independent of the steps); "seminorm" the adjoint whose backward
        error control ignores the parameter gradients (fewer backward evaluations).
      max_num_steps: bound on trial steps (accepted + rejected) per solve.
      min_step_size: adaptive steps never go below max(min_step_size, 4·eps·max|t|).
      adjoint_rtol, adjoint_atol: tolerances of the adjoint's backward solve
        (default: rtol, atol).
    """

    method: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    step_size: Optional[float] = None
    num_steps: Optional[int] = None
    adjoint: Union[bool, str] = False
    max_num_steps: int = 4096
    min_step_size: float = 0.0
    adjoint_rtol: Optional[float] = None
    adjoint_atol: Optional[float] = None

    def __post_init__(self) -> None:
        method, step_size, num_steps = self.method, self.step_size, self.num_steps
        if method not in TABLEAUS:
            raise ValueError(f"Unknown method {method!r}; available methods are "
                             f"{sorted(TABLEAUS)}.")
        if step_size is not None and num_steps is not None:
            raise ValueError("Pass step_size or num_steps, not both.")
        if step_size is not None and not step_size > 0:
            raise ValueError(f"step_size must be positive, got {step_size}.")
        if num_steps is not None and (int(num_steps) != num_steps or num_steps < 1):
            raise ValueError(f"num_steps must be a positive integer, got {num_steps}.")
        if step_size is None and num_steps is None and not TABLEAUS[method].adaptive:
            raise ValueError(
                f"Method {method!r} has no error estimate: pass step_size or num_steps, or "
                f"choose an adaptive method "
                f"({sorted(m for m, tb in TABLEAUS.items() if tb.adaptive)}).")
        for name in ("rtol", "atol", "adjoint_rtol", "adjoint_atol"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if self.rtol + self.atol == 0:
            raise ValueError(f"rtol and atol may be 0 but not both 0, got {self.rtol}, {self.atol}.")
        if not (self.adjoint is False or self.adjoint is True or self.adjoint == "seminorm"):
            raise ValueError(f"adjoint must be one of {ADJOINT_MODES}, got {self.adjoint!r}.")
        if int(self.max_num_steps) != self.max_num_steps or self.max_num_steps < 1:
            raise ValueError(f"max_num_steps must be a positive integer, got "
                             f"{self.max_num_steps}.")
        if self.min_step_size < 0:
            raise ValueError(f"min_step_size must be >= 0, got {self.min_step_size}.")
        # Normalized types: a config read from JSON gives the same object.
        for name, cast in (("rtol", float), ("atol", float), ("min_step_size", float),
                           ("max_num_steps", int)):
            object.__setattr__(self, name, cast(getattr(self, name)))
        if step_size is not None:
            object.__setattr__(self, "step_size", float(step_size))
        if num_steps is not None:
            object.__setattr__(self, "num_steps", int(num_steps))

    @property
    def adaptive(self) -> bool:
        """True when steps are chosen by the error estimate (no fixed grid)."""
        return self.step_size is None and self.num_steps is None

    @property
    def tolerance(self) -> float:
        """The larger of rtol and atol: how far two runs of an adaptive solve may differ."""
        return max(self.rtol, self.atol)

    def replace(self, **changes: Any) -> "Solver":
        """A copy with `changes` (checked like a new Solver)."""
        return dataclasses.replace(self, **changes)

    def get_config(self) -> Dict[str, Any]:
        """The settings as a JSON-ready dict: method, tolerances, adjoint and step bound
        always, the others where they are set."""
        always = ("method", "rtol", "atol", "adjoint", "max_num_steps")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in always or getattr(self, f.name) not in (None, 0.0)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Solver":
        """The Solver of a `get_config()` dict (unknown keys are errors)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"Unknown solver setting(s) {unknown}; settings are "
                             f"{sorted(known)}.")
        return cls(**config)

    @classmethod
    def resolve(cls, solver: SolverLike, options: Mapping[str, Any],
                default: Optional["Solver"] = None) -> "Solver":
        """The solver of a call that takes `solver=` and, as a shorthand, settings as
        keywords (`options`), which replace those of `solver` (or of `default`).

        Example:
            >>> Solver.resolve(None, {"num_steps": 2}, Solver("rk4", num_steps=8)).num_steps
            2
        """
        solver = cls.of(solver, default)
        return solver.replace(**options) if options else solver

    @classmethod
    def of(cls, value: SolverLike, default: Optional["Solver"] = None) -> "Solver":
        """`value` as a Solver: a Solver, a config dict, or None for `default`
        (or the default Solver)."""
        if isinstance(value, Solver):
            return value
        if value is None:
            return default if default is not None else cls()
        if isinstance(value, Mapping):
            return cls.from_config(value)
        raise TypeError(f"A solver is a Solver or a dict of its settings, got "
                        f"{type(value).__name__}.")


# The names of every `Solver` setting (the keywords `solver_settings` takes out).
SOLVER_SETTINGS = tuple(f.name for f in dataclasses.fields(Solver))
