"""Versions of published entries: publishing again adds version 2 beside an untouched
version 1, loading picks the newest or the one asked for, the command line lists and
evaluates versions, an entry in the layout before versions is refused with the command
that migrates it (byte for byte), and every shipped entry is in the versioned layout."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
from test_flow_zoo import tiny_config

import ode_zoo
from ode_zoo.cli import main
from ode_zoo.zoo import catalog
from ode_zoo.zoo import publish as publish_module
from ode_zoo.zoo.configs import load_config, zoo_dirs
from ode_zoo.zoo.export import export
from ode_zoo.zoo.presets import save_to_preset
from ode_zoo.zoo.publish import TRAINING_HISTORY, publish
from ode_zoo.zoo.recipes import build_model
from ode_zoo.zoo.versions import SERVING, is_flat, versions
from ode_zoo.zoo.versions import main as migrate_command

NAME = "ffjord_toy_8gaussians"      # a zoo name, so it loads by name; the recipe is tiny


def _run(directory: Path, config: Path, seed: int) -> Path:
    """A training run's best weights (seeded random ones) and history."""
    directory.mkdir(parents=True)
    model = build_model(load_config(str(config)))
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.1 * rng.normal(size=w.shape) for w in model.get_weights()])
    model.save_weights(str(directory / "best.weights.h5"))
    (directory / "history.json").write_text(json.dumps({
        "history": [{"epoch": 1}], "best": 1.0, "best_epoch": 1, "train_seconds": 36.0 * seed,
        "hardware": "test"}))
    return directory


def _files(directory: Path) -> Dict[str, str]:
    """SHA-256 of every file under `directory`, by relative path."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _weights(model) -> list:
    return [w.numpy() for w in model.weights]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Dict[str, str]]:
    """(saved_models/<NAME> of a temporary zoo, published twice; the hashes of version
    1's files, preset and export, before the second publish). The serving checks
    (minutes on a busy machine; tests/test_flow_zoo.py runs them) are skipped."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish_module, "check_serving", lambda *args: None)
        return _publish_twice(tmp_path_factory.mktemp("zoo"))


def _publish_twice(tmp: Path) -> Tuple[Path, Dict[str, str]]:
    config = tiny_config(tmp)
    config.write_text(json.dumps({**json.loads(config.read_text()), "name": NAME}))
    entry = tmp / "saved_models" / NAME
    first = publish(str(config), run_dir=_run(tmp / "run1", config, seed=1), output=entry)
    assert first == entry / "1"
    before = {**_files(entry / "1"), **_files(entry / SERVING / "1")}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["publish", str(config), "--run-dir", str(_run(tmp / "run2", config, 2)),
                     "--output", str(entry)]) == 0
    assert (f"published {config} version 2 to {entry / '2'} (TF Serving: "
            f"{entry / SERVING / '2'})") in printed.getvalue()
    return entry, before


@pytest.fixture(scope="module")
def entry(published: Tuple[Path, Dict[str, str]]) -> Path:
    return published[0]


@pytest.fixture
def zoo(entry: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary zoo's saved_models is where names are looked up."""
    monkeypatch.setattr(catalog, "zoo_dirs", lambda kind: [entry.parent])
    return entry


def test_publishing_again_adds_version_2_and_leaves_version_1_unchanged(published) -> None:
    entry, before = published
    assert sorted(versions(entry)) == [1, 2]
    assert sorted(p.name for p in (entry / SERVING).iterdir()) == ["1", "2"]
    assert {**_files(entry / "1"), **_files(entry / SERVING / "1")} == before
    assert sorted(_files(entry / "2")) == ["config.json", "metadata.json", "model.weights.h5",
                                           TRAINING_HISTORY]
    first, second = (json.loads((entry / v / "metadata.json").read_text()) for v in "12")
    assert (first["version"], second["version"]) == (1, 2)
    assert second["metrics_command"] == f"ode-zoo eval {NAME} --version 2"
    assert second["training"]["wall_clock_hours"] == 0.02
    assert first["weights_sha256"] != second["weights_sha256"]
    assert not list(entry.rglob(".tmp-*")), "publish left a staging folder"


def test_load_picks_the_newest_version_or_the_one_asked_for(zoo: Path) -> None:
    newest, first = ode_zoo.load(NAME), ode_zoo.load(NAME, version=1)
    assert newest.zoo_metadata["version"] == 2 and first.zoo_metadata["version"] == 1
    for by_path, by_name in ((ode_zoo.load(zoo), newest),
                             (ode_zoo.load(zoo, version=1), first),
                             (ode_zoo.load(zoo / "1"), first)):
        for a, b in zip(_weights(by_path), _weights(by_name)):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(newest), _weights(first)))
    assert catalog.published_metadata(NAME)["version"] == 2


@pytest.mark.parametrize("where", ["name", "entry"])
def test_an_unknown_version_is_an_error_naming_the_versions(zoo: Path, where: str) -> None:
    with pytest.raises(ValueError, match=rf"{NAME} has no version 3; its versions are 1, 2 "
                                         r"\(the newest when none is given\)$"):
        ode_zoo.load(NAME if where == "name" else zoo, version=3)


def test_versions_of_what_has_none_are_errors(zoo: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="is a preset of its own, without versions"):
        ode_zoo.load(zoo / "1", version=1)
    monkeypatch.setattr(catalog, "zoo_dirs", lambda kind: [])
    with pytest.raises(ValueError, match=f"'{NAME}' has no published versions, so no version 1"):
        ode_zoo.load(NAME, version=1)


def test_the_demo_flow_is_chosen_by_newest_versions(tmp_path: Path, monkeypatch) -> None:
    """ffjord_mnist's version 1 read best, its version 2 worse than cfm_mnist's."""
    shares = {"ffjord_mnist/1": 0.9, "ffjord_mnist/2": 0.1, "cfm_mnist/1": 0.5}
    for folder, share in shares.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metadata.json").write_text(json.dumps(
            {"metrics": {"test_sample_confident_share": share}}))
    monkeypatch.setattr(catalog, "zoo_dirs", lambda kind: [tmp_path])
    assert catalog.best_image_flow("mnist") == ("cfm_mnist", 0.5, {"ffjord_mnist": 0.1})


def test_list_info_and_eval_show_versions(zoo: Path, capsys) -> None:
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith(NAME))
    assert line.split()[1:4] == ["flow", "v2", "test_nll"]
    assert main(["info", NAME]) == 0
    info = capsys.readouterr().out
    dates = [json.loads((zoo / v / "metadata.json").read_text())["date"] for v in "12"]
    assert f"published versions in {zoo} (TF Serving: {zoo / SERVING}):" in info
    assert f"  v1   {dates[0]} test_nll " in info and f"  v2   {dates[1]} test_nll " in info
    assert f"version 2 ({zoo / '2'}):" in info and '"version": 2' in info
    assert main(["info", NAME, "--version", "1"]) == 0
    assert f"version 1 ({zoo / '1'}):" in capsys.readouterr().out
    assert main(["eval", NAME, "--version", "1"]) == 0
    assert "all published metrics reproduced" in capsys.readouterr().out
    with pytest.raises(ValueError, match="has no version 3; its versions are 1, 2"):
        main(["eval", NAME, "--version", "3"])


def test_export_keeps_the_published_version_number(zoo: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    monkeypatch.setattr(publish_module, "check_serving", lambda *args: None)
    assert main(["export", str(zoo), "--version", "1", "--output", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["1"]


def test_an_entry_in_the_old_layout_is_refused_until_migrated(entry: Path, tmp_path: Path,
                                                              monkeypatch, capsys) -> None:
    """The layout before versions: one preset at the entry's root, serving/1 beside it."""
    flat = tmp_path / NAME
    model = ode_zoo.load(entry, version=1)
    history = entry / "1" / TRAINING_HISTORY
    save_to_preset(model, flat, {"metrics": {}}, extra_files={TRAINING_HISTORY: history})
    export(model, flat / SERVING)
    before = _files(flat)
    monkeypatch.setattr(catalog, "zoo_dirs", lambda kind: [tmp_path])
    command = f"python -m ode_zoo.zoo.versions {flat}"
    with pytest.raises(ValueError, match=rf"the layout before versions.*`{command}`"):
        ode_zoo.load(NAME)
    with pytest.raises(ValueError, match="the layout before versions"):
        config = tiny_config(tmp_path)
        publish(str(config), run_dir=_run(tmp_path / "run", config, seed=4), output=flat)

    assert migrate_command([str(flat)]) == 0
    assert capsys.readouterr().out == f"{flat}: preset moved to {flat / '1'}\n"
    assert _files(flat) == {f"1/{k}" if "/" not in k else k: v for k, v in before.items()}
    for a, b in zip(_weights(ode_zoo.load(NAME)), _weights(model)):
        np.testing.assert_array_equal(a, b)
    assert migrate_command([str(flat)]) == 1                  # nothing left to migrate
    assert "has no preset at its root to migrate (versions: [1])" in capsys.readouterr().err


@pytest.mark.parametrize("entry_dir", sorted(d for root in zoo_dirs("saved_models")
                                             for d in root.iterdir()
                                             if d.is_dir() and not d.name.startswith(".")),
                         ids=lambda d: d.name)
def test_every_shipped_entry_is_in_the_versioned_layout(entry_dir: Path) -> None:
    """A version's preset and its export come together; the numbers agree."""
    assert not is_flat(entry_dir), (f"{entry_dir} is in the layout before versions: run "
                                    f"`python -m ode_zoo.zoo.versions {entry_dir}`")
    found = versions(entry_dir)
    assert found and sorted(found) == sorted(int(p.name) for p in (entry_dir / SERVING).iterdir()
                                             if not p.name.startswith("."))
    for number, directory in found.items():
        assert {"config.json", "model.weights.h5", "metadata.json"} <= set(_files(directory))
        metadata = json.loads((directory / "metadata.json").read_text())
        assert metadata.get("version", 1) == number      # versions 1 may predate the key
