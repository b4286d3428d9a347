"""The zoo: configs, recipes, training, presets, loading by name and serving export."""
from ode_zoo.zoo.configs import available_configs, load_config
from ode_zoo.zoo.export import export
from ode_zoo.zoo.presets import load_preset, save_to_preset
from ode_zoo.zoo.registry import list_models, load
from ode_zoo.zoo.serving_checks import ServingCheckError, check_serving
from ode_zoo.zoo.train import train

__all__ = ["available_configs", "load_config", "train", "list_models", "load", "save_to_preset",
           "load_preset", "export", "check_serving", "ServingCheckError"]
