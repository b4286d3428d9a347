"""Presets and the registry: a saved model comes back identical and compiled, broken
weight files are named in the error, `ode_zoo.load` resolves names and paths, and
the installed package carries the zoo's configs and published models."""
from __future__ import annotations

import configparser
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import ode_zoo
from ode_zoo import models
from ode_zoo.models import ODENetClassifier
from ode_zoo.models.base import ZooModel
from ode_zoo.zoo import load_config, load_preset, registry, save_to_preset
from ode_zoo.zoo.presets import METADATA_FILE, WEIGHTS_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(filters=8, groups=4, method="rk4", num_steps=1)
IMAGES = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny odenet_mnist preset (random weights) in a temporary directory."""
    model = ode_zoo.load("odenet_mnist", load_weights=False, **TINY)
    return save_to_preset(model, tmp_path_factory.mktemp("preset") / "tiny",
                          {"metrics": {"test_accuracy": 0.5}, "command": "pytest", "date": "x"})


def _predict(model) -> np.ndarray:
    return model.predict(IMAGES, verbose=0)


def test_preset_is_self_describing(preset: Path) -> None:
    assert sorted(p.name for p in preset.iterdir()) == ["config.json", METADATA_FILE,
                                                         WEIGHTS_FILE]
    config = json.loads((preset / "config.json").read_text())
    zoo = load_config("odenet_mnist")
    for section in ("name", "dataset", "training", "evaluation"):
        assert config[section] == zoo[section]
    assert config["model"]["class"] == "ODENetClassifier"
    solver = {**zoo["model"]["config"]["solver"], "method": "rk4", "num_steps": 1}
    assert config["model"]["config"] == {**zoo["model"]["config"], "filters": 8, "groups": 4,
                                         "solver": solver}
    metadata = json.loads((preset / METADATA_FILE).read_text())
    assert metadata["metrics"] == {"test_accuracy": 0.5} and metadata["command"] == "pytest"
    assert metadata["date"] == "x"                       # the caller's keys win
    assert metadata["ode_zoo_version"] == ode_zoo.__version__
    assert metadata["parameter_count"] == 3642
    assert len(metadata["weights_sha256"]) == 64


def test_loaded_preset_predicts_like_the_saved_model_and_fine_tunes(preset: Path,
                                                                    tmp_path: Path) -> None:
    model = load_preset(preset)
    again = load_preset(preset)
    np.testing.assert_array_equal(_predict(model), _predict(again))
    assert model.zoo_metadata["command"] == "pytest"
    assert model.zoo_config["name"] == "odenet_mnist"
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(IMAGES, np.arange(4), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and "accuracy" in history.history
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    # The fine-tuned model's preset holds its weights and no optimizer state.
    save_to_preset(model, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuned = load_preset(tmp_path)
    assert not [w for w in caught if "optimizer" in str(w.message)]
    np.testing.assert_array_equal(_predict(tuned), _predict(model))
    assert (tmp_path / WEIGHTS_FILE).stat().st_size < 1.2 * (preset / WEIGHTS_FILE).stat().st_size


def test_preset_resaved_after_loading_is_identical(preset: Path, tmp_path: Path) -> None:
    save_to_preset(load_preset(preset), tmp_path, {"date": "x"})
    assert (tmp_path / "config.json").read_text() == (preset / "config.json").read_text()
    for saved, resaved in zip(load_preset(preset).weights, load_preset(tmp_path).weights):
        np.testing.assert_array_equal(saved.numpy(), resaved.numpy())


def test_overrides_replace_constructor_arguments(preset: Path) -> None:
    model = load_preset(preset, num_steps=3, method="midpoint")
    assert (model.ode_block.solver.num_steps, model.ode_block.solver.method) == (3, "midpoint")
    with pytest.raises(ValueError, match=r"Unknown override\(s\) \['num_step'\].*'num_steps'"):
        load_preset(preset, num_step=3)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(path.stat().st_size))


@pytest.mark.parametrize("damage", [_truncate, _random_bytes], ids=["truncated", "random"])
@pytest.mark.parametrize("rehash", [False, True], ids=["stale-sha", "matching-sha"])
def test_corrupt_weights_raise_an_error_naming_the_file(preset: Path, tmp_path: Path,
                                                        damage, rehash: bool) -> None:
    """Caught by the recorded SHA-256, and by the HDF5 read when the hash was updated too."""
    copy = tmp_path / "preset"
    copy.mkdir()
    for path in preset.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    damage(copy / WEIGHTS_FILE)
    if rehash:
        metadata = json.loads((copy / METADATA_FILE).read_text())
        metadata["weights_sha256"] = hashlib.sha256((copy / WEIGHTS_FILE).read_bytes()).hexdigest()
        (copy / METADATA_FILE).write_text(json.dumps(metadata))
    found = "could not be loaded into ODENetClassifier" if rehash else "does not match the SHA-256"
    with pytest.raises(ValueError, match=f"{copy / WEIGHTS_FILE} {found}"):
        load_preset(copy)


def test_missing_files_are_named(preset: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes((preset / "config.json").read_bytes())
    (tmp_path / METADATA_FILE).write_bytes((preset / METADATA_FILE).read_bytes())
    assert load_preset(tmp_path, load_weights=False).architecture_config()["filters"] == 8
    with pytest.raises(FileNotFoundError, match=str(tmp_path / WEIGHTS_FILE)):
        load_preset(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing" / "config.json")):
        load_preset(tmp_path / "nothing")


def test_weights_of_another_architecture_are_refused(preset: Path) -> None:
    with pytest.raises(ValueError, match=rf"{preset / WEIGHTS_FILE} could not be loaded into "
                                         r"ODENetClassifier\(.*'filters': 16"):
        load_preset(preset, filters=16)


def test_models_without_a_zoo_config_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no zoo config to save; get zoo models from "
                                         r"ode_zoo.load\(...\)"):
        save_to_preset(ODENetClassifier(**TINY), tmp_path)


def test_every_zoo_model_class_has_the_mixin() -> None:
    for name in models.__all__:
        assert issubclass(getattr(models, name), ZooModel), name
    assert ODENetClassifier.config_keys() == [
        "num_classes", "image_shape", "filters", "groups", "solver"]


def test_zoo_config_reads_are_copies() -> None:
    model = ode_zoo.load("odenet_mnist", load_weights=False, **TINY)
    model.zoo_config["name"] = "changed"
    assert model.zoo_config["name"] == "odenet_mnist"
    model.zoo_metadata["changed"] = True
    assert "changed" not in model.zoo_metadata


def test_list_models_names_the_zoo_configs() -> None:
    names = sorted(p.stem for p in (REPO_ROOT / "zoo_configs").glob("*.json"))
    assert ode_zoo.list_models() == names and "odenet_mnist" in names


def test_load_by_name_uses_the_published_preset(preset: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    entry = tmp_path / "odenet_mnist"
    shutil.copytree(preset, entry / "1")
    monkeypatch.setattr(registry, "published_entry", lambda name: entry)
    np.testing.assert_array_equal(_predict(ode_zoo.load("odenet_mnist")),
                                  _predict(load_preset(preset)))


def test_load_by_name_without_published_weights(monkeypatch) -> None:
    monkeypatch.setattr(registry, "published_entry", lambda name: None)
    with pytest.raises(FileNotFoundError,
                       match=r"`ode-zoo train odenet_mnist --publish`.*load_weights=False"):
        ode_zoo.load("odenet_mnist")
    model = ode_zoo.load("odenet_mnist", load_weights=False, **TINY)
    assert model.optimizer is not None and model.architecture_config()["filters"] == 8
    with pytest.raises(ValueError, match=r"Unknown override\(s\) \['filter'\].*'filters'"):
        ode_zoo.load("odenet_mnist", load_weights=False, filter=8)


def test_unknown_names_list_the_available_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Unknown zoo model 'odenet_mnsit'.*'odenet_mnist'"):
        ode_zoo.load("odenet_mnsit")


def test_setup_cfg_lists_every_package() -> None:
    """setup.cfg names its packages (to map zoo_configs/ and saved_models/ into the
    package); a new subpackage must be added there."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    listed = parser["options"]["packages"].split()
    found = [".".join(init.parent.relative_to(REPO_ROOT).parts)
             for init in (REPO_ROOT / "ode_zoo").rglob("__init__.py")]
    assert sorted(listed) == sorted(found + ["ode_zoo.zoo_configs", "ode_zoo.saved_models"])


def test_package_data_globs_cover_what_publish_writes(preset: Path, tmp_path: Path) -> None:
    """Two versions of an entry as publish writes them: NAME/K/ and NAME/serving/K/."""
    entry = tmp_path / "odenet_mnist"
    for version in (1, 2):
        save_to_preset(load_preset(preset), entry / str(version),
                       extra_files={"training_history.json": preset / "config.json"})
        ode_zoo.export(load_preset(preset), entry / "serving", version)
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    globs = parser["options.package_data"]["ode_zoo.saved_models"].split()
    shipped = {f for g in globs for f in glob.glob(g, root_dir=tmp_path)}
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert shipped == written and {"odenet_mnist/2/model.weights.h5",
                                   "odenet_mnist/2/training_history.json",
                                   "odenet_mnist/serving/2/saved_model.pb"} <= written


def test_installed_package_loads_from_any_directory(preset: Path, tmp_path: Path) -> None:
    """Run from an unrelated directory, so (in CI) the non-editable install is imported."""
    script = ("import json, sys, ode_zoo\n"
              "from ode_zoo.zoo.configs import zoo_dirs\n"
              "tiny = dict(filters=8, groups=4, method='rk4', num_steps=1)\n"
              "by_name = ode_zoo.load('odenet_mnist', load_weights=False, **tiny)\n"
              "from_path = ode_zoo.load(sys.argv[1])\n"
              "print(json.dumps({'models': ode_zoo.list_models(),\n"
              "                  'configs': [str(d) for d in zoo_dirs('zoo_configs')],\n"
              "                  'name': by_name.zoo_config['name'],\n"
              "                  'sha': from_path.zoo_metadata['weights_sha256']}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(preset)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "odenet_mnist" in report["models"] and report["configs"]
    assert report["name"] == "odenet_mnist"
    assert report["sha"] == json.loads((preset / METADATA_FILE).read_text())["weights_sha256"]
