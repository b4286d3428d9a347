"""Butcher tableaus of the Runge–Kutta methods that `odeint` offers.

Each tableau states its order and, for embedded pairs, the order of the error
estimate. Coefficients are exact rationals or the published decimals.

Example:
    >>> from ode_zoo.solvers.tableaus import TABLEAUS
    >>> TABLEAUS["dopri5"].order, TABLEAUS["dopri5"].num_stages
    (5, 7)
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction as F
from typing import Optional, Sequence, Tuple

from ode_zoo.solvers.interpolation import DenseMatrix, hermite_dense, polynomial_dense


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """Coefficients of an explicit Runge–Kutta method.

    Attributes:
      name: method name used by `odeint(method=...)`.
      order: order of the propagated solution.
      c: stage times as fractions of the step.
      a: lower-triangular stage weights, row i has i entries.
      b: solution weights.
      b_error: weights of the error estimate (b minus the embedded b̂), or None
        for methods without an embedded pair.
      error_order: order of the embedded solution (sets the step controller's
        exponent), or None.
      dense: stage-weight polynomials of the dense output (see
        `ode_zoo.solvers.interpolation`), or None for fixed-step methods.
    """

    name: str
    order: int
    c: Tuple[float, ...]
    a: Tuple[Tuple[float, ...], ...]
    b: Tuple[float, ...]
    b_error: Optional[Tuple[float, ...]] = None
    error_order: Optional[int] = None
    dense: Optional[DenseMatrix] = None

    @property
    def num_stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        """True when the method carries an embedded error estimate."""
        return self.b_error is not None

    @property
    def fsal(self) -> bool:
        """First-same-as-last: the last stage is f at the new solution."""
        return self.c[-1] == 1.0 and self.a[-1] == self.b[:-1] and self.b[-1] == 0.0


def _floats(values: Sequence) -> Tuple[float, ...]:
    return tuple(float(v) for v in values)


def _tableau(name, order, c, a, b, b_hat=None, error_order=None, b_mid=None) -> ButcherTableau:
    """A tableau from exact rationals; embedded pairs get Hermite dense output."""
    b_error = dense = None
    if b_hat is not None:
        b_error = _floats(F(x) - F(y) for x, y in zip(b, b_hat))
        dense = hermite_dense(_floats(b), None if b_mid is None else _floats(b_mid))
    return ButcherTableau(
        name=name, order=order, c=_floats(c), a=tuple(_floats(row) for row in a),
        b=_floats(b), b_error=b_error, error_order=error_order, dense=dense)


EULER = _tableau("euler", 1, c=[0], a=[[]], b=[1])

MIDPOINT = _tableau("midpoint", 2, c=[0, F(1, 2)], a=[[], [F(1, 2)]], b=[0, 1])

# Kutta's 3/8 rule: fourth order, smaller error constant than the classic RK4.
RK4 = _tableau(
    "rk4", 4,
    c=[0, F(1, 3), F(2, 3), 1],
    a=[[], [F(1, 3)], [F(-1, 3), 1], [1, -1, 1]],
    b=[F(1, 8), F(3, 8), F(3, 8), F(1, 8)])

# Bogacki–Shampine 3(2), FSAL.
BOSH3 = _tableau(
    "bosh3", 3,
    c=[0, F(1, 2), F(3, 4), 1],
    a=[[], [F(1, 2)], [0, F(3, 4)], [F(2, 9), F(1, 3), F(4, 9)]],
    b=[F(2, 9), F(1, 3), F(4, 9), 0],
    b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
    error_order=2)

# Dormand–Prince 5(4), FSAL, with Shampine's (1986) half-step dense output.
_DOPRI5_B = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
DOPRI5 = _tableau(
    "dopri5", 5,
    c=[0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
    a=[[],
       [F(1, 5)],
       [F(3, 40), F(9, 40)],
       [F(44, 45), F(-56, 15), F(32, 9)],
       [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
       [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
       _DOPRI5_B[:-1]],
    b=_DOPRI5_B,
    b_hat=[F(5179, 57600), 0, F(7571, 16695), F(393, 640), F(-92097, 339200),
           F(187, 2100), F(1, 40)],
    error_order=4,
    b_mid=[F(6025192743, 30085553152) / 2, 0, F(51252292925, 65400821598) / 2,
           F(-2691868925, 45128329728) / 2, F(187940372067, 1594534317056) / 2,
           F(-1776094331, 19743644256) / 2, F(11237099, 235043384) / 2])

# Tsitouras 5(4) (2011), FSAL, with the paper's fourth-order continuous extension
# b_i(θ), each given as a product of factors (coefficients in increasing powers of θ).
_TSIT5_DENSE = polynomial_dense([
    [[0, -1.0530884977290216], [-1.3299890189751412, 1],
     [0.7139816917074209, -1.4364028541716351, 1]],
    [[0, 0, 0.1017], [1.2949852507374631, -2.1966568338249754, 1]],
    [[0, 0, 2.490627285651252793], [1.57803468208092486, -2.38535645472061657, 1]],
    [[0, 0, -16.54810288924490272], [-1.21712927295533244, 1], [-0.61620406037800089, 1]],
    [[0, 0, 47.37952196281928122], [-1.203071208372362603, 1], [-0.658047292653547382, 1]],
    [[0, 0, -34.87065786149660974], [-1.2, 1], [-0.666666666666666667, 1]],
    [[0, 0, 2.5], [-1, 1], [-0.6, 1]],
])
_TSIT5_B = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
            -3.290069515436081, 2.324710524099774, 0.0]
TSIT5 = ButcherTableau(
    name="tsit5", order=5,
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=((),
       (0.161,),
       (-0.008480655492356989, 0.335480655492357),
       (2.897153057105493, -6.359448489975075, 4.3622954328695815),
       (5.325864828439257, -11.748883564062828, 7.4955393428898365,
        -0.09249506636175525),
       (5.86145544294642, -12.92096931784711, 8.159367898576159,
        -0.071584973281401, -0.028269050394068383),
       tuple(_TSIT5_B[:-1])),
    b=tuple(_TSIT5_B),
    b_error=(-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995,
             -0.1447110071732629, 0.5823571654525552, -0.45808210592918697,
             0.015151515151515152),
    error_order=4,
    dense=_TSIT5_DENSE)

TABLEAUS = {t.name: t for t in (EULER, MIDPOINT, RK4, BOSH3, DOPRI5, TSIT5)}
