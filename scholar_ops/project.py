"""Where the Prefect project is: the checkout that deployments run from.

The installed distribution is the ``scholar_ops`` package (engine and command
line). The Prefect project around it (``flows/``, ``tasks/``, ``blocks/``,
``deployments.yaml``, ``automations.yaml``, ``docker/``) is the repository's
checkout: ``$SCHOLAR_OPS_HOME`` when set, else the directory that holds this
package when it runs from a checkout (``uv sync`` installs it editable).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scholar_ops.vault.errors import ConfigError

HOME_ENV = "SCHOLAR_OPS_HOME"
_MARKER = "deployments.yaml"


def project_root() -> Path:
    """The checkout holding the Prefect project (ConfigError naming SCHOLAR_OPS_HOME if none)."""
    if value := os.environ.get(HOME_ENV):
        root = Path(value).expanduser().resolve()
        if not (root / _MARKER).is_file():
            raise ConfigError(
                f"{HOME_ENV}={value} holds no {_MARKER}: point it at the scholar-ops checkout"
            )
        return root
    beside = Path(__file__).resolve().parents[1]
    if (beside / _MARKER).is_file():
        return beside
    raise ConfigError(
        f"the scholar-ops Prefect project (flows/, {_MARKER}) was not found next to the "
        f"installed package: set {HOME_ENV} to the checkout"
    )


def import_project() -> Path:
    """Make ``flows``, ``tasks`` and ``blocks`` importable; returns the project root."""
    root = project_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root
