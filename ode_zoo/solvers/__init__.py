"""Numerical ODE solvers in pure TensorFlow (no Keras): `odeint` with fixed-step
and adaptive Runge–Kutta methods and adjoint gradients."""
from ode_zoo.solvers.errors import (MaxStepsExceededError, NonFiniteStateError, ODESolverError,
                                    Status, StepSizeTooSmallError)
from ode_zoo.solvers.odeint import ADJOINT_MODES, check_solver_options, odeint
from ode_zoo.solvers.stats import SolveStats, StatsRecorder
from ode_zoo.solvers.tableaus import TABLEAUS

__all__ = ["odeint", "check_solver_options", "ADJOINT_MODES", "SolveStats", "StatsRecorder", "Status", "TABLEAUS", "ODESolverError",
           "MaxStepsExceededError", "StepSizeTooSmallError", "NonFiniteStateError"]
