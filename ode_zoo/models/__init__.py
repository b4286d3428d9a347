"""Keras models of the zoo."""
from ode_zoo.models.odenet import ODENetClassifier

__all__ = ["ODENetClassifier"]
