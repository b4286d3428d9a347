"""Zoo configs: `zoo_configs/<name>.json`, the one source of truth that
training, evaluation and loading read. Unknown keys are errors that list the
allowed ones.

Example:
    >>> config = load_config("odenet_mnist")
    >>> config["model"]["class"]
    'ODENetClassifier'
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

ALLOWED_KEYS = {
    "": {"name", "description", "model", "dataset", "training", "evaluation"},
    "model": {"class", "config"},
    # toy2d also names its `toy` set and each split's `sizes` and `seeds`; sequence
    # datasets may keep their first `frames`; physionet2012 rounds times to `round_hours`.
    "dataset": {"name", "train_split", "validation_split", "test_split", "toy", "sizes", "seeds",
                "frames", "round_hours"},
    # Sequence models may also set `passes_per_epoch` and a `frames_schedule`.
    "training": {"model_overrides", "epochs", "batch_size", "learning_rate", "lr_schedule",
                 "shift_pixels", "checkpoint_every", "seed", "monitor", "mode", "threads",
                 "passes_per_epoch", "frames_schedule"},
    # Image flows of MNIST may ask for the digit classifier's measures of their samples.
    "evaluation": {"split", "batch_size", "model_overrides", "sample_quality"},
}
REQUIRED_KEYS = {"": {"name", "model", "dataset", "training", "evaluation"},
                 "model": {"class", "config"},
                 "dataset": {"name", "train_split", "validation_split", "test_split"}}


def zoo_dirs(kind: str) -> List[Path]:
    """Where `zoo_configs` / `saved_models` live: inside the installed package,
    then beside the package in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    return [d for d in (package / kind, package.parent / kind) if d.is_dir()]


def available_configs() -> Dict[str, Path]:
    """Zoo names and their config files."""
    found: Dict[str, Path] = {}
    for directory in zoo_dirs("zoo_configs"):
        for path in sorted(directory.glob("*.json")):
            found.setdefault(path.stem, path)
    return found


def validate_config(config: Dict[str, Any], source: str) -> Dict[str, Any]:
    """Check a config's keys; raises ValueError naming the bad key and the allowed ones."""
    for section, allowed in ALLOWED_KEYS.items():
        block = config if section == "" else config.get(section, {})
        where = section or "top level"
        if not isinstance(block, dict):
            raise ValueError(f"{source}: '{section}' must be an object.")
        unknown = sorted(set(block) - allowed)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown} at {where}; allowed keys are "
                             f"{sorted(allowed)}.")
        missing = sorted(REQUIRED_KEYS.get(section, set()) - set(block))
        if missing:
            raise ValueError(f"{source}: missing key(s) {missing} at {where}.")
    return config


def load_config(name_or_path: str) -> Dict[str, Any]:
    """The validated config of a zoo name or of a JSON file path."""
    path = Path(name_or_path)
    if not (path.suffix == ".json" and path.is_file()):
        configs = available_configs()
        if name_or_path not in configs:
            raise ValueError(f"Unknown zoo model {name_or_path!r}; available models are "
                             f"{sorted(configs)}.")
        path = configs[name_or_path]
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"Zoo config {path} is not valid JSON: {e}") from e
    return validate_config(config, str(path))
