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


def _console(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`main()` as the ode-zoo command runs it: arguments from sys.argv."""
    monkeypatch.setattr("sys.argv", ["ode-zoo", *args])
    return main()


def test_expected_errors_print_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _console(monkeypatch, "info", "no_such_model") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ode-zoo: error: Unknown zoo model 'no_such_model'; "
                                   "available models are [")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    args = ["info", "no_such_model"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(ValueError, match="Unknown zoo model"):
        _console(monkeypatch, *args)


def test_multi_line_messages_keep_their_first_line() -> None:
    from ode_zoo.cli import error_line
    assert error_line(RuntimeError("export failed (exit 1):\nTraceback ...\nKeyError")) == (
        "ode-zoo: error: export failed (exit 1): (more with --debug)")
    assert error_line(ode_zoo.MaxStepsExceededError("odeint reached max_num_steps=10")) == (
        "ode-zoo: error: odeint reached max_num_steps=10")


def test_ctrl_c_exits_with_status_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted() -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr("ode_zoo.zoo.catalog.describe_all", interrupted)
    assert _console(monkeypatch, "list") == 130
    assert capsys.readouterr().err.strip() == "ode-zoo: interrupted"


def _command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the installed ode-zoo as a new user would: no TF_CPP_MIN_LOG_LEVEL set."""
    search_path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([shutil.which("ode-zoo", path=search_path), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env=env)


# TensorFlow's start-up logs: "I0000 00:00:1700000000.123 4377 port.cc:153] oneDNN ...",
# "E0000 ... cuda_platform.cc:52] failed call to cuInit", absl's pre-init warning.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuda", re.MULTILINE)


def test_commands_start_without_tensorflow_logs(tmp_path: Path) -> None:
    listed = _command("list", cwd=tmp_path)
    assert not TF_LOG_LINE.search(listed.stderr), listed.stderr
    assert listed.returncode == 0, listed.stderr
    assert "odenet_mnist" in listed.stdout
    failed = _command("info", "no_such_model", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.startswith("ode-zoo: error: Unknown zoo model 'no_such_model'")
    assert failed.stderr.count("\n") == 1, failed.stderr      # one line: no logs, no traceback
