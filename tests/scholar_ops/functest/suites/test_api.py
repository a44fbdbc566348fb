"""The api suite against the reference application: healthy, and each fault it exists
to catch (a 500, a renamed field, a slow endpoint, a route without auth), and a target
that is down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from scholar_ops.functest.config import parse_plan
from scholar_ops.functest.context import Credentials, SuiteContext
from scholar_ops.functest.errors import PlanError, ServiceUnavailable
from scholar_ops.functest.models import TestSuite
from scholar_ops.functest.settings import AuthSettings
from scholar_ops.functest.suites.api import JsonCondition as C
from scholar_ops.functest.suites.api import Settings, check_path, parse_contract_junit, run
from scholar_ops.testbed.aischolar import AIScholar

SEARCH_SCHEMA = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "results": {
            "type": "array",
            "items": {"type": "object", "required": ["document_id", "score", "text"]},
        }
    },
}


def section(contract: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "endpoints": [
            {"method": "GET", "path": "/health/live", "auth": False,
             "expect": {"json_paths": {"$.status": {"equals": "ok"}}}},
            {"method": "GET", "path": "/api/me",
             "expect": {"json_paths": {"$.username": {"equals": "{username}"}}}},
            {"method": "POST", "path": "/api/documents", "expect": {"status": 201},
             "json": {"title": "{prefix}api probe", "content": "Okapis live in forests."}},
            {"name": "search", "method": "POST", "path": "/api/search",
             "json": {"query": "okapis forests", "top_k": 3},
             "expect": {"status": 200, "max_latency_ms": 1000, "json_schema": SEARCH_SCHEMA,
                        "json_paths": {"$.results[0].score": {"type": "number", "min": -1, "max": 1},
                                       "$.results": {"length_min": 1}}}},
        ],
        "cleanup": {},
        "auth_required": [{"method": "GET", "path": "/api/documents"},
                          {"method": "POST", "path": "/api/search", "json": {"query": "x"}}],
    }  # fmt: skip
    if contract:
        doc["contract"] = {
            "max_examples": 5,
            "exclude_paths": ["^/api/auth/(register|logout)$"],
            "cleanup": {},
        }
    return doc


def context(app: AIScholar, tmp_path: Path, url: str | None = None) -> SuiteContext:
    auth = AuthSettings.model_validate({"register": {}})
    return SuiteContext(
        base_url=url or app.url,
        credentials=Credentials(app.test_user, SecretStr(app.test_password)),
        artifact_dir=tmp_path,
        auth=auth,
        secrets=(app.test_password,),
    )


def run_api(app: AIScholar, tmp_path: Path, contract: bool = False) -> TestSuite:
    return run(context(app, tmp_path), Settings.model_validate(section(contract)))


def by_name(suite: TestSuite) -> dict[str, Any]:
    return {t.test_name: t for t in suite.tests}


def test_healthy_application_passes_with_its_contract(aischolar_clean: AIScholar, tmp_path: Path):
    suite = run_api(aischolar_clean, tmp_path, contract=True).finish(0, 1)
    failures = [(t.test_name, t.error_message) for t in suite.tests if not t.ok]
    assert failures == []
    names = set(by_name(suite))
    assert {"search", "GET /api/me", "contract POST /api/search", "contract POST /api/ask"} <= names
    assert not any("register" in n for n in names)
    assert suite.status == "passed"
    # nothing the endpoints or the generated requests created is left behind
    assert documents(aischolar_clean, "sotest-contract") == []
    assert [d for d in documents(aischolar_clean) if d["title"].startswith("sotest-")] == []


def documents(app: AIScholar, user: str | None = None) -> list[dict[str, Any]]:
    token = app.token(user or app.test_user, app.test_password)
    answer = httpx.get(f"{app.url}/api/documents", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return list(answer.json()["documents"])


def test_a_server_error_fails_critical_in_endpoints_and_contract(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(search_500=True)
    suite = run_api(aischolar_clean, tmp_path, contract=True)
    search = by_name(suite)["search"]
    assert search.status == "failed" and search.severity == "critical"
    assert search.error_message == "POST /api/search answered 500, expected 200"
    contract = by_name(suite)["contract POST /api/search"]
    assert contract.status == "failed" and contract.severity == "critical"
    assert contract.error_message == "POST /api/search: Server error (500)"
    assert aischolar_clean.test_password not in str([t.error_message for t in suite.tests])
    # the kept report reproduces the request without the contract user's token
    report = Path(contract.context["report"]).read_text()
    assert "Authorization: [Filtered]" in report and "Bearer" not in report
    assert (
        "Bearer" not in (Path(contract.context["report"]).parent / "schemathesis.toml").read_text()
    )


def test_a_renamed_field_breaks_paths_schema_and_contract(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(renamed_field=True)
    suite = run_api(aischolar_clean, tmp_path, contract=True)
    search = by_name(suite)["search"]
    assert search.status == "failed" and search.severity == "high"
    assert "$.results[0].score missing" in search.error_message
    assert "similarity" in search.error_message
    contract = by_name(suite)["contract POST /api/search"]
    assert contract.status == "failed" and contract.severity == "high"
    assert contract.error_message == (
        'POST /api/search: Response violates schema: "score" is a required property'
    )


def test_a_slow_endpoint_fails_its_latency_condition(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(slow_search=True)
    search = by_name(run_api(aischolar_clean, tmp_path))["search"]
    assert search.status == "failed" and search.severity == "medium"
    assert "over its 1000 ms limit" in search.error_message
    assert int(search.context["latency_ms"]) >= 1400


def test_a_route_answering_without_a_token_is_an_auth_bypass(aischolar_clean, tmp_path):
    settings = Settings.model_validate({"auth_required": [{"path": "/openapi.json"}]})
    suite = run(context(aischolar_clean, tmp_path), settings)
    (t,) = suite.tests
    assert t.status == "failed" and t.severity == "critical"
    assert t.error_message == "auth bypass: GET /openapi.json answered 200 without a token"


def test_a_refused_login_is_a_critical_failure_not_unavailability(aischolar_clean, tmp_path):
    ctx = context(aischolar_clean, tmp_path)
    ctx.auth = AuthSettings()  # no registration: a wrong password stays wrong
    ctx.credentials = Credentials(aischolar_clean.test_user, SecretStr("sotest-wrong-password"))
    ctx.secrets = ("sotest-wrong-password",)
    suite = run(ctx, Settings.model_validate(section()))
    tests = by_name(suite)
    assert tests["login"].status == "failed" and tests["login"].severity == "critical"
    assert "401" in str(tests["login"].error_message)
    assert "sotest-wrong-password" not in str(tests["login"].error_message)
    assert tests["search"].status == "skipped"  # needs the token
    assert tests["GET /health/live"].status == "passed"  # does not


def test_a_target_that_is_down_is_unavailable(aischolar, tmp_path):
    from scholar_ops.sources.process import free_port

    ctx = context(aischolar, tmp_path, url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable, match="connection refused"):
        run(ctx, Settings.model_validate(section()))


def test_conditions_say_what_is_wrong():
    doc = {"results": [{"score": 0.5, "title": "a"}, {"score": "x"}], "n": 2}
    assert check_path(doc, "$.results[0].score", C(type="number", min=0, max=1)) is None
    assert check_path(doc, "$.results[*].score", C(type="number")) == (
        "$.results[*].score is str 'x', expected number"
    )
    assert check_path(doc, "$.n", C(equals=3)) == "$.n is 2, expected 3"
    assert check_path(doc, "$.missing", C(exists=False)) is None
    assert check_path(
        doc, "$.results[0].similarity", C(exists=True)) == "$.results[0].similarity missing (response had score, title)"  # fmt: skip
    assert check_path(doc, "$.results", C(length_min=3)) == (
        "$.results has 2 items, expected at least 3")  # fmt: skip


def test_contract_failures_are_read_from_the_junit_report(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text("""<?xml version="1.0"?><testsuites><testsuite name="schemathesis">
  <testcase name="GET /ok" time="0.5"/>
  <testcase name="POST /bad" time="1.5"><failure type="failure" message="ST101">1. Test Case ID: a

- ST101 Server error

[500] Internal Server Error:

- ST108 Response violates schema

    'score' is a required property

Reproduce with:

    curl -X POST -H 'Authorization: [Filtered]' http://x/bad</failure></testcase>
  <testcase name="GET /skipped" time="0"><skipped/></testcase>
</testsuite></testsuites>""")
    assert parse_contract_junit(report) == [
        ("GET /ok", None, 0.5),
        ("POST /bad", "Server error (500); Response violates schema: 'score' is a required property",
         1.5),
    ]  # fmt: skip


def test_plan_errors_name_the_field():
    with pytest.raises(PlanError, match=r"suites\.api\.endpoints\.0\.expect\.stauts"):
        parse_plan({"target": {"base_url": "http://x"},
                    "suites": {"api": {"endpoints": [{"path": "/", "expect": {"stauts": 200}}]}}})  # fmt: skip
    with pytest.raises(PlanError, match="name endpoints, auth_required or contract"):
        parse_plan({"target": {"base_url": "http://x"}, "suites": {"api": {"enabled": True}}})


# -- a third-party application, by configuration only ------------------------------------

DATASETTE_PLAN = """
target: {name: datasette, base_url: "%s"}
suites:
  api:
    probe_path: /-/versions.json
    endpoints:
      - name: full-text search
        path: /papers/papers.json
        params: {_shape: array, _search: okapis}
        expect:
          status: 200
          max_latency_ms: 2000
          json_paths:
            "$": {length_min: 1}
            "$[0].title": {contains: Okapis}
            "$[*].year": {type: integer, min: 1990, max: 2030}
          json_schema:
            type: array
            items: {type: object, required: [id, title, year, abstract]}
      - path: /papers.json
        expect:
          json_paths:
            "$.tables[0].name": {equals: papers}
            "$.tables[0].count": {equals: 4}
      - path: /papers/papers/1.json
        expect: {json_paths: {"$.rows[0][1]": {equals: Okapis of the Ituri forest}}}
      - path: /papers/nothing.json
        expect: {status: 404, json_paths: {"$.ok": {equals: false}}}
      - name: home page
        path: /
        expect: {headers: {content-type: {contains: text/html}}}
"""

DATASETTE_BROKEN = """
target: {name: datasette, base_url: "%s"}
suites:
  api:
    probe_path: /-/versions.json
    endpoints:
      - name: a bad sort column is a client error
        path: /papers/papers.json
        params: {_sort: no_such_column}
        expect: {status: 400}
      - name: search finds a paper of 2018
        path: /papers/papers.json
        params: {_shape: array, _search: okapis}
        expect: {json_paths: {"$[0].year": {equals: 2018}}}
      - name: search answers with scores
        path: /papers/papers.json
        params: {_shape: array, _search: okapis}
        expect: {json_paths: {"$[0].score": {type: number}}}
      - name: served as JSON with a cache header
        path: /papers.json
        expect: {headers: {cache-control: {contains: no-store}}}
"""


def run_plan(text: str, tmp_path: Path) -> TestSuite:
    import yaml

    from scholar_ops.functest.session import make_context, run_plan_suite

    plan = parse_plan(yaml.safe_load(text))
    return run_plan_suite(plan, "api", make_context(plan, artifact_dir=tmp_path))


def test_a_third_party_application_by_configuration_only(datasette, tmp_path):
    suite = run_plan(DATASETTE_PLAN % datasette.url, tmp_path)
    assert [(t.test_name, t.status, t.error_message) for t in suite.tests] == [
        ("full-text search", "passed", None),
        ("GET /papers.json", "passed", None),
        ("GET /papers/papers/1.json", "passed", None),
        ("GET /papers/nothing.json", "passed", None),
        ("home page", "passed", None),
    ]
    assert suite.status == "passed"


def test_a_third_party_application_failing_its_conditions(datasette, tmp_path):
    suite = run_plan(DATASETTE_BROKEN % datasette.url, tmp_path)
    got = {t.test_name: (t.status, t.severity, t.error_message) for t in suite.tests}
    # Datasette answers an unknown sort column with a server error: the suite says so
    assert got["a bad sort column is a client error"] == (
        "failed",
        "critical",
        "GET /papers/papers.json answered 500, expected 400",
    )
    assert got["search finds a paper of 2018"] == (
        "failed",
        "high",
        "GET /papers/papers.json: $[0].year is 2019, expected 2018",
    )
    assert got["search answers with scores"] == (
        "failed",
        "high",
        "GET /papers/papers.json: $[0].score missing (response had abstract, id, title, year)",
    )
    status, severity, message = got["served as JSON with a cache header"]
    assert (status, severity) == ("failed", "high")
    assert str(message).startswith("GET /papers.json: header cache-control")
    assert suite.status == "failed"
