"""The zoo: configs, recipes and training of named models."""
from ode_zoo.zoo.configs import available_configs, load_config
from ode_zoo.zoo.train import train

__all__ = ["available_configs", "load_config", "train"]
