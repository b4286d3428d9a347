"""Keras models of the zoo."""
from ode_zoo.models.cfm_image import CFMImageFlow
from ode_zoo.models.deq_classifier import DEQClassifier
from ode_zoo.models.ffjord_image import FFJORDImageFlow
from ode_zoo.models.ffjord_toy import FFJORDToyFlow
from ode_zoo.models.latent_ode import LatentODE
from ode_zoo.models.ode2vae import ODE2VAE
from ode_zoo.models.odenet import ODENetClassifier
from ode_zoo.models.odernn import ODERNNClassifier

__all__ = ["CFMImageFlow", "DEQClassifier", "FFJORDImageFlow", "FFJORDToyFlow", "LatentODE",
           "ODE2VAE",
           "ODENetClassifier", "ODERNNClassifier"]
