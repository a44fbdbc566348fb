"""Where the Prefect project is: the checkout that deployments run from.

The installed distribution is the ``scholar_ops`` package (engine and command
line). The Prefect project around it (``flows/``, ``tasks/``, ``blocks/``,
``deployments.yaml``, ``automations.yaml``, ``docker/``) is the repository's
checkout: ``$SCHOLAR_OPS_HOME`` when set, else the directory that holds this
package when it runs from a checkout (``uv sync`` installs it editable).

``set_project_directory`` is the deployments' pull step (deployments.yaml ``pull:``):
a worker needs no hand-set variable to find the flows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scholar_ops.vault.errors import ConfigError

HOME_ENV = "SCHOLAR_OPS_HOME"
_MARKER = "deployments.yaml"
_FLOWS = "flows"


def _holds_project(root: Path) -> bool:
    return (root / _MARKER).is_file() and (root / _FLOWS).is_dir()


def project_root() -> Path:
    """The checkout holding the Prefect project (ConfigError naming SCHOLAR_OPS_HOME if none).

    ``$SCHOLAR_OPS_HOME`` when set (it must hold ``flows/`` and ``deployments.yaml``), else
    the directory above this installed package when that holds them."""
    if value := os.environ.get(HOME_ENV):
        root = Path(value).expanduser().resolve()
        if not _holds_project(root):
            raise ConfigError(
                f"{HOME_ENV}={value} holds no {_FLOWS}/ and {_MARKER}: point {HOME_ENV} at the "
                "scholar-ops checkout (the directory with deployments.yaml), or unset it"
            )
        return root
    beside = Path(__file__).resolve().parents[1]
    if _holds_project(beside):
        return beside
    raise ConfigError(
        f"the scholar-ops Prefect project ({_FLOWS}/, {_MARKER}) is not next to the installed "
        f"package ({beside}): set {HOME_ENV} to the scholar-ops checkout in the worker's "
        "environment"
    )


def import_project() -> Path:
    """Make ``flows``, ``tasks`` and ``blocks`` importable; returns the project root."""
    root = project_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def set_project_directory() -> dict[str, str]:
    """Prefect pull step: make the project's checkout the working directory of a flow run.

    Declared in deployments.yaml as ``- scholar_ops.project.set_project_directory: {}``;
    the worker's flow-run process runs it before it loads the deployment's entrypoint
    (``flows/...py``, relative to the working directory). Like Prefect's own
    ``set_working_directory`` it returns ``{"directory": ...}`` for later steps.
    Raises ConfigError (one line naming SCHOLAR_OPS_HOME) when no checkout is found."""
    root = import_project()
    os.chdir(root)
    return {"directory": str(root)}
