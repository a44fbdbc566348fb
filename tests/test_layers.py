"""The layer contracts (pyproject.toml, [tool.importlinter]) hold, and they bite: an
engine module that imports Prefect or the command line breaks `make lint`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = str(Path(sys.executable).parent / "lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_project_keeps_its_layers() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("scholar_ops/vault/leak.py", "import prefect\n", "scholar_ops.vault.leak -> prefect"),
        (
            "scholar_ops/sources/leak.py",
            "from scholar_ops.cli import main\n",
            "scholar_ops.sources.leak -> scholar_ops.cli",
        ),
        ("blocks/leak.py", "import tasks.common\n", "blocks.leak -> tasks.common"),
        (
            "scholar_ops/functest/leak.py",
            "import prefect\n",
            "scholar_ops.functest.leak -> prefect",
        ),
        (
            "scholar_ops/functest/leak.py",
            "import scholar_ops.aischolar.app\n",
            "scholar_ops.functest.leak -> scholar_ops.aischolar.app",
        ),
        (
            "scholar_ops/aischolar/leak.py",
            "import scholar_ops.functest.report\n",
            "scholar_ops.aischolar.leak -> scholar_ops.functest.report",
        ),
    ],
)
def test_an_import_against_the_layers_breaks_the_lint(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("scholar_ops", "flows", "tasks", "blocks"):
        shutil.copytree(ROOT / package, copy / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / module).write_text(line)
    proc = _lint(copy)
    assert proc.returncode == 1, proc.stdout
    assert "BROKEN" in proc.stdout and broken in proc.stdout, proc.stdout
