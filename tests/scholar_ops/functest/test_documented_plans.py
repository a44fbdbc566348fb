"""The plans the documentation shows are valid plans: README's complete example and the
shipped reference plan."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from scholar_ops.functest.config import load_plan, parse_plan
from scholar_ops.functest.suites import SUITE_NAMES

ROOT = Path(__file__).resolve().parents[3]


def test_the_readme_example_is_a_complete_valid_plan():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The test plan") :]
    (example,) = re.findall(r"```yaml\n(.*?)```", section, re.S)[:1]
    plan = parse_plan(yaml.safe_load(example), "README example")
    assert plan.configured() == list(SUITE_NAMES)
    assert plan.credentials is not None and plan.credentials.secret_block


def test_the_shipped_reference_plan_is_valid(monkeypatch):
    monkeypatch.setenv("AISCHOLAR_URL", "http://127.0.0.1:1")
    plan = load_plan(ROOT / "flows" / "testing" / "plans" / "aischolar.yaml")
    assert plan.configured() == ["api", "database", "integration", "performance", "ui"]
    assert plan.target.base_url == "http://127.0.0.1:1"
