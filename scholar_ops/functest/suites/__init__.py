"""The suites, by name. Each module has ``Settings`` (its plan section, a SuiteSettings)
and ``run(ctx, settings) -> TestSuite``: results for what it tested, ServiceUnavailable
when it could not reach what it tests (before any verdict)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from scholar_ops.functest.context import SuiteContext
from scholar_ops.functest.models import TestSuite

#: in the order they are reported; api, database and ui run side by side
SUITE_NAMES: tuple[str, ...] = ("api", "database", "integration", "performance", "ui", "pytest")

_MODULES = {
    "api": "scholar_ops.functest.suites.api",
    "database": "scholar_ops.functest.suites.database",
    "integration": "scholar_ops.functest.suites.integration",
    "performance": "scholar_ops.functest.suites.performance",
    "ui": "scholar_ops.functest.suites.ui",
    "pytest": "scholar_ops.functest.suites.pytest_files",
}


def runner(name: str) -> Callable[[SuiteContext, Any], TestSuite]:
    """The ``run`` function of suite ``name``."""
    run: Callable[[SuiteContext, Any], TestSuite] = import_module(_MODULES[name]).run
    return run
