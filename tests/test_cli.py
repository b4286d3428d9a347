"""The ``ode-zoo`` command, its spiral demo, and the CI/README contract."""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

import ode_zoo
from ode_zoo.cli import main
from ode_zoo.demos.spiral import run_spiral_demo

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_version_flag_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ode-zoo {ode_zoo.__version__}"


def test_installed_metadata_matches_package_version() -> None:
    assert importlib.metadata.version("ode_zoo") == ode_zoo.__version__


def test_console_script_runs_from_anywhere(tmp_path: Path) -> None:
    search_path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    script = shutil.which("ode-zoo", path=search_path)
    assert script, "the ode-zoo console script is not installed: pip install ."
    done = subprocess.run(
        [script, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"ode-zoo {ode_zoo.__version__}"


def test_demo_writes_png_and_reports_mse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "new_dir" / "spiral.png"
    assert main(["demo", "spiral", "--epochs", "1", "--seed", "3", "--output", str(output)]) == 0
    assert output.read_bytes()[: len(PNG_SIGNATURE)] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    mse = re.search(r"trajectory MSE \(dopri5, t in \[0, 25\]\): (\S+)", printed)
    assert mse, printed
    assert math.isfinite(float(mse.group(1)))


@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_demo_rejects_bad_epochs(epochs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "spiral", "--epochs", epochs])
    assert exit_info.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- test-command -->\n```bash\n(.+)\n```\n<!-- /test-command -->", readme
    )
    assert block, "README.md lost its test-command block"
    done = subprocess.run(
        ["bash", str(REPO_ROOT / ".ci" / "run"), "--print-test-command"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == block.group(1) + "\n"
    assert "pytest" in done.stdout


@pytest.mark.slow
def test_default_demo_fits_the_spiral(tmp_path: Path) -> None:
    result = run_spiral_demo(tmp_path / "spiral.png", verbose=0)
    assert result.mse < 0.05
