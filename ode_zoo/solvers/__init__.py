"""Numerical ODE solvers in pure TensorFlow (no Keras): `odeint` with fixed-step
and adaptive Runge–Kutta methods and adjoint gradients."""
from ode_zoo.solvers.errors import (MaxStepsExceededError, NonFiniteStateError, ODESolverError,
                                    Status, StepSizeTooSmallError, solver_errors)
from ode_zoo.solvers.odeint import odeint
from ode_zoo.solvers.solver import ADJOINT_MODES, Solver, SolverLike
from ode_zoo.solvers.stats import SolveStats, StatsRecorder
from ode_zoo.solvers.tableaus import TABLEAUS

__all__ = ["odeint", "Solver", "SolverLike", "ADJOINT_MODES", "SolveStats", "StatsRecorder",
           "Status", "TABLEAUS", "ODESolverError",
           "MaxStepsExceededError", "StepSizeTooSmallError", "NonFiniteStateError", "solver_errors"]
