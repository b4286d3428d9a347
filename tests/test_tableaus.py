"""Every tableau satisfies the order conditions of its stated order, and its
dense output reproduces the step's end value."""
import numpy as np
import pytest

from ode_zoo.solvers.interpolation import stage_weights
from ode_zoo.solvers.tableaus import TABLEAUS


def _arrays(tableau, b):
    c = np.array(tableau.c)
    a = np.zeros((len(c), len(c)))
    for i, row in enumerate(tableau.a):
        a[i, :len(row)] = row
    return a, np.asarray(b), c


def _order_residuals(a, b, c, order):
    """Residuals of the Butcher order conditions up to `order` (<= 5)."""
    conditions = [
        (1, b.sum(), 1), (2, b @ c, 1 / 2),
        (3, b @ c**2, 1 / 3), (3, b @ a @ c, 1 / 6),
        (4, b @ c**3, 1 / 4), (4, b @ (c * (a @ c)), 1 / 8), (4, b @ a @ c**2, 1 / 12),
        (4, b @ a @ a @ c, 1 / 24),
        (5, b @ c**4, 1 / 5), (5, b @ (c**2 * (a @ c)), 1 / 10), (5, b @ (c * (a @ c**2)), 1 / 15),
        (5, b @ (c * (a @ a @ c)), 1 / 30), (5, b @ (a @ c)**2, 1 / 20), (5, b @ a @ c**3, 1 / 20),
        (5, b @ a @ (c * (a @ c)), 1 / 40), (5, b @ a @ a @ c**2, 1 / 60),
        (5, b @ a @ a @ a @ c, 1 / 120),
    ]
    return [abs(value - exact) for p, value, exact in conditions if p <= order]


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_stage_times_are_row_sums(name):
    a, _, c = _arrays(TABLEAUS[name], TABLEAUS[name].b)
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-14)


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_solution_weights_meet_order_conditions(name):
    tableau = TABLEAUS[name]
    a, b, c = _arrays(tableau, tableau.b)
    assert max(_order_residuals(a, b, c, tableau.order)) < 1e-13


@pytest.mark.parametrize("name", [n for n, tb in TABLEAUS.items() if tb.adaptive])
def test_embedded_weights_meet_their_lower_order(name):
    tableau = TABLEAUS[name]
    a, b, c = _arrays(tableau, np.array(tableau.b) - np.array(tableau.b_error))
    assert max(_order_residuals(a, b, c, tableau.error_order)) < 1e-13
    # ...and not the propagated order, or the estimate would be zero.
    assert max(_order_residuals(a, b, c, tableau.error_order + 1)) > 1e-6


@pytest.mark.parametrize("name", [n for n, tb in TABLEAUS.items() if tb.adaptive])
def test_dense_output_ends_at_the_step_solution(name):
    tableau = TABLEAUS[name]
    np.testing.assert_allclose(stage_weights(1.0, tableau.dense), tableau.b, atol=1e-13)
    np.testing.assert_allclose(stage_weights(0.0, tableau.dense), 0.0, atol=1e-15)
    assert stage_weights(0.5, tableau.dense).sum() == pytest.approx(0.5, abs=1e-13)
