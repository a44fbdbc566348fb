"""Importing the functionality-testing engine stays cheap: the heavy libraries (Great
Expectations, Schemathesis, Playwright, chromadb) load only when a suite runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("great_expectations", "schemathesis", "playwright", "chromadb", "prefect")


def test_importing_the_engine_and_every_suite_loads_no_heavy_library():
    code = (
        "import sys\n"
        "import scholar_ops.functest.config, scholar_ops.functest.session\n"
        "from scholar_ops.functest.suites import SUITE_NAMES, _MODULES\n"
        "import importlib\n"
        "for m in _MODULES.values(): importlib.import_module(m)\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
