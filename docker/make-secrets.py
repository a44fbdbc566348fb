"""Make the secret files docker-compose.yml reads, and the web configs of Prometheus and
AlertManager (basic auth with bcrypt hashes) from their passwords.

    .venv/bin/python docker/make-secrets.py [--dir docker/secrets]

Each missing password or token file gets a random value (mode 0600); existing ones are
kept (put your own value in a file first to choose it). Then ``prometheus-web.yml`` and
``alertmanager-web.yml`` are written again from ``prometheus_password`` and
``alertmanager_password``: one user, ``scholar-ops``, with the bcrypt hash of the
password. Nothing secret is printed. ``smtp_password`` and ``slack_webhook_url`` are
yours to write (the script only says when they are missing).

Needs the ``bcrypt`` package (installed in the project's environment).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

#: the one basic-auth user of Prometheus and AlertManager (prometheus.yml and Grafana's
#: datasource log in as it)
USER = "scholar-ops"
#: generated when missing: file name -> what it is
GENERATED = {
    "prometheus_password": "Prometheus's basic-auth password (user scholar-ops)",
    "alertmanager_password": "AlertManager's basic-auth password (user scholar-ops)",
    "grafana_admin_password": "Grafana's admin password",
    "health_token": "the health service's read-only token (Prometheus scrapes with it)",
    "health_operator_token": "the health service's operator token",
}
#: web config file -> the password file it is made from
WEB_CONFIGS = {
    "prometheus-web.yml": "prometheus_password",
    "alertmanager-web.yml": "alertmanager_password",
}
#: the operator's to provide
PROVIDED = ("smtp_password", "slack_webhook_url")
BCRYPT_COST = 12


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def web_config(password: str, *, cost: int = BCRYPT_COST) -> str:
    """A Prometheus/AlertManager web config: basic auth for USER with ``password``."""
    import bcrypt

    hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(cost)).decode("ascii")
    return (
        "# Made by docker/make-secrets.py from the password file next to it: do not edit.\n"
        "basic_auth_users:\n"
        f"  {USER}: {hashed}\n"
    )


def make_secrets(directory: Path, *, cost: int = BCRYPT_COST) -> list[str]:
    """Create what is missing in ``directory``; the lines to tell the operator."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    said = []
    for name, what in GENERATED.items():
        path = directory / name
        if path.exists():
            continue
        _write_private(path, secrets.token_urlsafe(24) + "\n")
        said.append(f"made {path}: {what}")
    for config, source in WEB_CONFIGS.items():
        password = (directory / source).read_text(encoding="utf-8").strip()
        if not password:
            raise SystemExit(f"{directory / source} is empty")
        _write_private(directory / config, web_config(password, cost=cost))
        said.append(f"wrote {directory / config} (user {USER}, bcrypt of {source})")
    for name in PROVIDED:
        if not (directory / name).exists():
            said.append(f"missing {directory / name}: write it yourself (see docker/README.md)")
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=Path(__file__).resolve().parent / "secrets", help="secrets/"
    )
    args = parser.parse_args(argv)
    for line in make_secrets(args.dir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
