"""The test plan: validated, one line naming the field at fault."""

from __future__ import annotations

import pytest

from scholar_ops.functest.config import RetrySettings, load_plan, parse_plan
from scholar_ops.functest.errors import PlanError

MINIMAL = {
    "target": {"base_url": "http://127.0.0.1:8080"},
    "suites": {"api": {"endpoints": [{"path": "/"}]}},
}


def test_minimal_plan_and_selection():
    plan = parse_plan(MINIMAL)
    assert plan.configured() == ["api"]
    assert plan.select(None) == ["api"]
    assert plan.select(None, smoke=True) == ["api"]
    with pytest.raises(PlanError, match="suite 'ui' is not configured"):
        plan.select(["ui"])
    with pytest.raises(PlanError, match="unknown suite 'apii'"):
        plan.select(["apii"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"suites": {}}, "target: Field required"),
        ({**MINIMAL, "target": {"base_url": "ftp://x"}}, "target.base_url"),
        ({**MINIMAL, "targt": {}}, "targt: Extra inputs are not permitted"),
        (
            {**MINIMAL, "credentials": {"username_env": "U"}},
            "username_env and password_env go together",
        ),
        (
            {
                **MINIMAL,
                "credentials": {"secret_block": "s", "username_env": "U", "password_env": "P"},
            },
            "not both",
        ),
        ({**MINIMAL, "stores": {"postgres": {"block": "a", "env": "B"}}}, "exactly one of"),
        ({**MINIMAL, "smoke": {"suites": ["nope"]}}, "unknown suite 'nope'"),
        (
            {**MINIMAL, "suites": {"api": {"enabeld": True, "endpoints": [{"path": "/"}]}}},
            "suites.api.enabeld",
        ),
        ({**MINIMAL, "test_prefix": "A"}, "test_prefix"),
    ],
)
def test_bad_plans_name_the_field(doc, message):
    with pytest.raises(PlanError) as e:
        parse_plan(doc, "plan.yaml")
    assert message in str(e.value)
    assert str(e.value).startswith("plan.yaml: ")
    assert "\n" not in str(e.value)


def test_plan_files_expand_environment_variables(tmp_path, monkeypatch):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "target:\n  base_url: ${APP_URL:-http://127.0.0.1:1}\n  name: ${APP_NAME}\nsuites:\n  api:\n    endpoints: [{path: /}]\n"
    )
    monkeypatch.delenv("APP_URL", raising=False)
    with pytest.raises(PlanError, match="environment variable APP_NAME is not set"):
        load_plan(path)
    monkeypatch.setenv("APP_NAME", "staging")
    plan = load_plan(path)
    assert plan.target.base_url == "http://127.0.0.1:1" and plan.target.name == "staging"
    monkeypatch.setenv("APP_URL", "http://10.0.0.5:8000")
    assert load_plan(path).target.base_url == "http://10.0.0.5:8000"


def test_missing_and_broken_files_are_one_line(tmp_path):
    with pytest.raises(PlanError, match="does not exist: pass --config FILE"):
        load_plan(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: [\n")
    with pytest.raises(PlanError, match=r"line .* is not valid YAML"):
        load_plan(bad)


def test_retry_delays_are_exponential_and_capped():
    r = RetrySettings(attempts=5, initial_delay_seconds=1, max_delay_seconds=5, multiplier=3)
    assert r.delays() == [1, 3, 5, 5]
    assert RetrySettings(attempts=1).delays() == []
