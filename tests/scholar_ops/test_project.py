"""The deployments' pull step finds the project with or without SCHOLAR_OPS_HOME, from any
working directory, and fails naming the variable when there is no project to find."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scholar_ops import project
from scholar_ops.vault.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory that is not the checkout (a worker's own directory)."""
    cwd = tmp_path / "worker"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(project.HOME_ENV, raising=False)
    return cwd


def _copy_of_project(dest: Path) -> Path:
    dest.mkdir()
    shutil.copy(ROOT / "deployments.yaml", dest / "deployments.yaml")
    (dest / "flows").mkdir()
    return dest


def test_without_the_variable_the_step_moves_to_the_checkout_of_the_package(elsewhere):
    assert Path.cwd() == elsewhere
    out = project.set_project_directory()
    assert Path.cwd() == ROOT
    assert out == {"directory": str(ROOT)}
    assert (Path.cwd() / "flows" / "backup" / "full_backup.py").is_file()


def test_an_empty_variable_counts_as_unset(elsewhere, monkeypatch):
    monkeypatch.setenv(project.HOME_ENV, "")
    assert project.set_project_directory() == {"directory": str(ROOT)}


def test_the_variable_wins_when_set(elsewhere, tmp_path, monkeypatch):
    other = _copy_of_project(tmp_path / "other-checkout")
    monkeypatch.setenv(project.HOME_ENV, str(other))
    assert project.set_project_directory() == {"directory": str(other.resolve())}
    assert Path.cwd() == other.resolve()


def test_a_variable_pointing_elsewhere_fails_in_one_line_naming_it(
    elsewhere, tmp_path, monkeypatch
):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(project.HOME_ENV, str(empty))
    with pytest.raises(ConfigError) as e:
        project.set_project_directory()
    msg = str(e.value)
    assert "\n" not in msg
    assert f"SCHOLAR_OPS_HOME={empty}" in msg and "flows/ and deployments.yaml" in msg
    assert Path.cwd() == elsewhere  # nothing moved


def test_an_installed_package_without_checkout_fails_naming_the_variable(
    elsewhere, tmp_path, monkeypatch
):
    """A wheel installed into site-packages: no deployments.yaml next to it, no variable."""
    site = tmp_path / "site-packages" / "scholar_ops"
    site.mkdir(parents=True)
    monkeypatch.setattr(project, "__file__", str(site / "project.py"))
    with pytest.raises(ConfigError) as e:
        project.set_project_directory()
    msg = str(e.value)
    assert "\n" not in msg
    assert "set SCHOLAR_OPS_HOME to the scholar-ops checkout" in msg
    assert Path.cwd() == elsewhere
    # ... and the variable is then the way out.
    monkeypatch.setenv(project.HOME_ENV, str(ROOT))
    assert project.set_project_directory() == {"directory": str(ROOT)}


def test_prefect_runs_the_pull_step_of_deployments_yaml(elsewhere, tmp_path):
    """The pull section as a worker's flow-run process runs it (Prefect imports the step by its
    dotted name and keeps its output), from another directory, without SCHOLAR_OPS_HOME; then
    every entrypoint of deployments.yaml resolves from the new working directory."""
    pull = yaml.safe_load((ROOT / "deployments.yaml").read_text())["pull"]
    assert pull == [{"scholar_ops.project.set_project_directory": {}}]
    script = (
        "import asyncio, json, os, sys\n"
        "from pathlib import Path\n"
        "import yaml\n"
        "from prefect.deployments.steps.core import run_steps\n"
        "doc = yaml.safe_load(open(sys.argv[1]))\n"
        "out = asyncio.run(run_steps(doc['pull'], print_function=lambda *a, **k: None))\n"
        "missing = [d['entrypoint'] for d in doc['deployments']\n"
        "           if not Path(d['entrypoint'].split(':')[0]).is_file()]\n"
        "print(json.dumps({'out': out, 'cwd': os.getcwd(), 'missing': missing}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.pop(project.HOME_ENV, None)
    # A worker's API; the step makes no request (nothing to resolve), so none need listen.
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    # deployments.yaml copied out of the checkout: the process starts far from it.
    spec = shutil.copy(ROOT / "deployments.yaml", elsewhere / "deployments-copy.yaml")
    proc = subprocess.run(
        [sys.executable, "-c", script, spec],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["out"]["directory"] == str(ROOT)
    assert result["cwd"] == str(ROOT)
    assert result["missing"] == []


def test_the_step_replaces_prefects_set_working_directory_on_an_unset_variable():
    """The old step resolved "{{ $SCHOLAR_OPS_HOME }}" to nothing on a worker without the
    variable; no step of deployments.yaml may depend on an environment variable again."""
    text = (ROOT / "deployments.yaml").read_text()
    assert "set_working_directory" not in text
    assert "{{ $" not in text
