"""The same suites, by configuration alone, against a web application nobody on this team
wrote: Datasette (from PyPI) serving a small SQLite database, with a JSON API and an HTML
UI, no login and no OpenAPI schema (so the api suite runs without contract testing, and
the plan says so by leaving `contract` out).

The plan below is all there is: no code of ours knows Datasette."""

from __future__ import annotations

from pathlib import Path

import yaml

from scholar_ops.functest.config import parse_plan
from scholar_ops.functest.report import build_report
from scholar_ops.functest.session import make_context, run_plan_suite

PLAN = """
target: {name: papers, base_url: "%(url)s", probe_path: /-/versions.json}
suites:
  api:
    probe_path: /-/versions.json
    endpoints:
      - name: full-text search
        path: /papers/papers.json
        auth: false
        params: {_search: okapis, _shape: array}
        expect:
          status: 200
          max_latency_ms: 2000
          json_paths:
            "$.length()": {equals: 1}
            "$[0].title": {contains: Okapis}
            "$[0].year": {type: integer, min: 1900, max: 2100}
          json_schema:
            type: array
            items: {type: object, required: [id, title, year, abstract]}
      - name: one row
        path: /papers/papers/2.json
        auth: false
        params: {_shape: objects}
        expect: {json_paths: {"$.rows[0].title": {equals: Retrieval-augmented answers}}}
      - name: a missing table is a 404
        path: /papers/nope.json
        auth: false
        expect: {status: 404}
  ui:
    pages:
      - {path: /, title_contains: Datasette, expect_visible: ["a[href='/papers']"]}
    journeys:
      - name: search the papers
        steps:
          - goto: /papers/papers
          - {fill: "#_search", value: "rate limits"}
          - click: "input[type=submit][value=Apply]"
          - expect_text: {selector: "table.rows-and-columns", contains: "Rate limits in Redis"}
          - expect_count: {selector: "table.rows-and-columns tbody tr", min: 1}
"""


def plan_for(url: str, **replace: str):
    text = PLAN % {"url": url}
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse_plan(yaml.safe_load(text), "datasette plan")


def run_all(plan, tmp_path: Path):
    ctx = make_context(plan, artifact_dir=tmp_path)
    return [run_plan_suite(plan, name, ctx) for name in plan.configured()]


def test_datasette_passes_its_api_and_ui_suites_by_configuration(datasette, tmp_path):
    suites = run_all(plan_for(datasette.url), tmp_path)
    report = build_report(suites, target="papers", base_url=datasette.url)
    failures = [(s.suite_name, t.test_name, t.error_message) for s, t in report.failures]
    assert failures == []
    assert [(s.suite_name, s.status, s.total_tests) for s in suites] == [
        ("api", "passed", 3),
        ("ui", "passed", 2),
    ]
    assert report.overall_status == "passed" and report.system_health_score == 100


def test_datasette_regressions_are_named(datasette, tmp_path):
    plan = plan_for(
        datasette.url,
        **{
            "contains: Okapis": "contains: Tapirs",
            'contains: "Rate limits in Redis"': 'contains: "Rate limits in Postgres"',
        },
    )
    api, ui = run_all(plan, tmp_path)
    (search,) = [t for t in api.tests if t.status == "failed"]
    assert search.test_name == "full-text search"
    assert "$[0].title 'Okapis of the Ituri forest' does not contain 'Tapirs'" in str(
        search.error_message
    )
    (journey,) = [t for t in ui.tests if t.status == "failed"]
    assert journey.severity == "critical"
    assert "Rate limits in Postgres" in str(journey.error_message)
    assert any(a.endswith(".png") for a in ui.artifacts)
