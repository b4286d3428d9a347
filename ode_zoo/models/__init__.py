"""Keras models of the zoo."""
from ode_zoo.models.ffjord_toy import FFJORDToyFlow
from ode_zoo.models.odenet import ODENetClassifier

__all__ = ["FFJORDToyFlow", "ODENetClassifier"]
