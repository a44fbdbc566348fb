"""The api suite: configured endpoints with conditions, routes that must refuse an
anonymous request, and contract testing from the OpenAPI schema.

- ``endpoints``: each request is one test; its conditions are the status, values at
  JSON paths (exists, equals, type, min/max, contains, length_min), a JSON Schema of
  the whole answer, and a latency limit. A 5xx is critical; a wrong status, body or
  schema is high; a latency over its limit is medium.
- ``auth_required``: requests sent without a token must be refused (401/403); an
  answer with data is a critical "auth bypass".
- ``contract``: Schemathesis (in a subprocess with a timeout) calls every operation of
  the schema with generated valid and invalid inputs and reports server errors and
  answers that break the schema, one test per operation. It runs as a dedicated test
  user (``<prefix>contract``, registered if the plan has ``auth.register``) whose
  documents are deleted afterwards when ``cleanup`` says how.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Collection
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, SecretStr, model_validator

from scholar_ops.functest.auth import AuthError, login
from scholar_ops.functest.context import Credentials, SuiteContext, _transport_reason, reachable
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.jsonpath import JsonPathError, extract
from scholar_ops.functest.models import Severity, TestResult, TestSuite
from scholar_ops.functest.settings import RequestSpec, Strict, SuiteSettings, fill

JsonType = Literal["string", "number", "integer", "boolean", "array", "object", "null"]


class JsonCondition(Strict):
    exists: bool | None = None
    equals: Any = None
    type: JsonType | None = None
    min: float | None = None
    max: float | None = None
    contains: str | None = None
    length_min: int | None = Field(default=None, ge=0)


class HeaderCondition(Strict):
    """A condition on a response header (names are case-insensitive)."""

    exists: bool | None = None
    equals: str | None = None
    contains: str | None = None


class Expect(Strict):
    status: int | list[int] = 200
    json_paths: dict[str, JsonCondition] = Field(default_factory=dict)
    json_schema: dict[str, Any] | None = None
    max_latency_ms: float | None = Field(default=None, gt=0)
    headers: dict[str, HeaderCondition] = Field(default_factory=dict)

    def statuses(self) -> list[int]:
        return self.status if isinstance(self.status, list) else [self.status]


class Endpoint(RequestSpec):
    """One request (method, path, params, json, headers, auth) and what its answer must
    satisfy. Its test is named ``name`` or "METHOD path"."""

    name: str | None = None
    expect: Expect = Field(default_factory=Expect)
    #: the severity of a failure that is not a server error or latency (default: high)
    severity: Severity | None = None

    def label(self) -> str:
        return self.name or f"{self.method.upper()} {self.path}"


class AuthProbe(Strict):
    """A request that must be refused when sent without a token (no Authorization)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    method: str = "GET"
    path: str
    params: dict[str, Any] | None = None
    json_body: Any = Field(default=None, alias="json")
    #: the statuses that count as refused
    refused: list[int] = Field(default_factory=lambda: [401, 403])

    def label(self) -> str:
        return f"{self.method.upper()} {self.path} refuses a request without a token"


class Cleanup(Strict):
    """How to delete what a test user owns (the defaults are the reference app's)."""

    list_path: str = "/api/documents"
    items_path: str = "$.documents[*]"
    id_field: str = "id"
    delete_path: str = "/api/documents/{id}"
    #: after the endpoints, the test user's records whose field starts with the run's
    #: test prefix are deleted (the contract user's are deleted whatever their name)
    prefix_field: str = "title"


class Contract(Strict):
    schema_path: str = "/openapi.json"
    #: a schema elsewhere (absolute URL); default: schema_path on the target
    schema_url: str | None = None
    max_examples: int = Field(default=10, ge=1, le=1000)
    mode: Literal["positive", "negative", "all"] = "all"
    checks: list[str] = Field(
        default_factory=lambda: ["not_a_server_error", "response_schema_conformance"]
    )
    phases: list[str] = Field(default_factory=lambda: ["examples", "coverage", "fuzzing"])
    #: operations left out (path regular expressions), e.g. registration, logout
    exclude_paths: list[str] = Field(default_factory=list)
    include_paths: list[str] = Field(default_factory=list)
    authenticated: bool = True
    seed: int | None = 1
    timeout_seconds: float = Field(default=180, gt=0)
    cleanup: Cleanup | None = None
    #: leave contract testing out of smoke runs
    in_smoke: bool = False


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 300.0

    #: a path that answers when the service is up (not necessarily healthy): asked
    #: first, a refused connection or a 502/503/504 there makes the suite unavailable
    probe_path: str = "/"
    endpoints: list[Endpoint] = Field(default_factory=list)
    auth_required: list[AuthProbe] = Field(default_factory=list)
    contract: Contract | None = None
    #: how to delete the test-prefixed records the endpoints create (e.g. a POST of a
    #: document titled "{prefix}..."); absent: nothing is deleted
    cleanup: Cleanup | None = None

    @model_validator(mode="after")
    def _something(self) -> Settings:
        if not (self.endpoints or self.auth_required or self.contract):
            raise ValueError("name endpoints, auth_required or contract")
        return self


# -- checks ------------------------------------------------------------------------------

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_path(doc: Any, path: str, cond: JsonCondition) -> str | None:
    """None when ``cond`` holds at ``path``, else what is wrong."""
    try:
        value = extract(doc, path)
    except JsonPathError as e:
        if cond.exists is False:
            return None
        hint = ""
        if isinstance(doc, dict | list):
            parent = path.rsplit(".", 1)[0]
            try:
                there = extract(doc, parent)
                if isinstance(there, dict):
                    hint = f" (response had {', '.join(sorted(there)[:8])})"
            except JsonPathError:
                pass
        return f"{path} missing{hint}" if "no field" in str(e) or "no item" in str(e) else str(e)
    values = value if isinstance(value, list) and "[*]" in path else [value]
    if cond.exists is False:
        return f"{path} present, expected absent"
    for v in values:
        if cond.type is not None:
            ok = isinstance(v, _PY_TYPES[cond.type]) and not (
                cond.type in ("number", "integer") and isinstance(v, bool)
            )
            if not ok:
                return f"{path} is {type(v).__name__} {_short(v)}, expected {cond.type}"
        if cond.equals is not None and v != cond.equals:
            return f"{path} is {_short(v)}, expected {_short(cond.equals)}"
        if cond.min is not None or cond.max is not None:
            if not isinstance(v, int | float) or isinstance(v, bool):
                return f"{path} is {_short(v)}, expected a number"
            if cond.min is not None and v < cond.min:
                return f"{path} is {v}, below {cond.min}"
            if cond.max is not None and v > cond.max:
                return f"{path} is {v}, above {cond.max}"
        if cond.contains is not None and cond.contains not in str(v):
            return f"{path} {_short(v)} does not contain {cond.contains!r}"
        if cond.length_min is not None and (
            not isinstance(v, list | str | dict) or len(v) < cond.length_min
        ):
            size = len(v) if isinstance(v, list | str | dict) else "no"
            return f"{path} has {size} items, expected at least {cond.length_min}"
    return None


def check_schema(doc: Any, schema: dict[str, Any]) -> str | None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"schema: {where}: {first.message}{more}"


def _names(ctx: SuiteContext) -> dict[str, str]:
    """The placeholders of requests and expected values: {prefix}, {username}."""
    return {
        "prefix": ctx.test_prefix,
        "username": ctx.credentials.username if ctx.credentials else "",
    }


def check_headers(headers: httpx.Headers, conditions: dict[str, HeaderCondition]) -> str | None:
    """None when every header condition holds, else what is wrong."""
    for name, cond in conditions.items():
        value = headers.get(name)
        if value is None:
            if cond.exists is False:
                continue
            return f"header {name} missing"
        if cond.exists is False:
            return f"header {name} present, expected absent"
        if cond.equals is not None and value != cond.equals:
            return f"header {name} is {_short(value)}, expected {_short(cond.equals)}"
        if cond.contains is not None and cond.contains not in value:
            return f"header {name} {_short(value)} does not contain {cond.contains!r}"
    return None


def run_endpoint(
    ctx: SuiteContext, client: httpx.Client, ep: Endpoint, headers: dict[str, str]
) -> TestResult:
    names = _names(ctx)
    method = ep.method.upper()
    path = fill(ep.path, **names)
    label = ep.label()
    ctx_info = {"endpoint": f"{method} {path}"}
    send_headers = {**(headers if ep.auth else {}), **(ep.headers or {})}
    started = time.monotonic()
    try:
        response = client.request(
            method,
            path,
            params=fill(ep.params, **names),
            json=fill(ep.json_body, **names),
            headers=send_headers,
        )
    except httpx.TransportError as e:
        return TestResult(label, "failed", time.monotonic() - started, severity="critical",
                          category="availability", context=ctx_info,
                          error_message=f"{method} {path}: {_transport_reason(e)}")  # fmt: skip
    elapsed = time.monotonic() - started
    latency_ms = response.elapsed.total_seconds() * 1000
    ctx_info["status"] = str(response.status_code)
    ctx_info["latency_ms"] = f"{latency_ms:.0f}"
    severity: Severity = ep.severity or "high"

    def fail(message: str, sev: Severity, category: str, **extra: str) -> TestResult:
        return TestResult(label, "failed", elapsed, error_message=ctx.scrub(message),
                          severity=sev, category=category, context={**ctx_info, **extra})  # fmt: skip

    wanted = ep.expect.statuses()
    if response.status_code not in wanted:
        sev: Severity = "critical" if response.status_code >= 500 else severity
        expected = " or ".join(str(s) for s in wanted)
        return fail(f"{method} {path} answered {response.status_code}, expected {expected}",
                    sev, "status", expected=expected, actual=str(response.status_code))  # fmt: skip
    if ep.expect.json_paths or ep.expect.json_schema is not None:
        try:
            doc = response.json()
        except ValueError:
            return fail(f"{method} {path}: the answer is not JSON", severity, "body")
        for path_expr, cond in ep.expect.json_paths.items():
            if cond.equals is not None or cond.contains is not None:
                cond = cond.model_copy(
                    update={"equals": fill(cond.equals, **names),
                            "contains": fill(cond.contains, **names)}
                )  # fmt: skip
            problem = check_path(doc, path_expr, cond)
            if problem:
                return fail(f"{method} {path}: {problem}", severity, "body", json_path=path_expr)
        if ep.expect.json_schema is not None:
            problem = check_schema(doc, ep.expect.json_schema)
            if problem:
                return fail(f"{method} {path}: {problem}", severity, "contract")
    problem = check_headers(response.headers, ep.expect.headers)
    if problem:
        return fail(f"{method} {path}: {problem}", severity, "headers")
    limit = ep.expect.max_latency_ms
    if limit is not None and latency_ms > limit:
        return fail(f"{method} {path} took {latency_ms:.0f} ms, over its {limit:g} ms limit",
                    "medium", "latency", expected=f"<= {limit:g} ms",
                    actual=f"{latency_ms:.0f} ms")  # fmt: skip
    return TestResult(label, "passed", elapsed, category="endpoint", context=ctx_info)


def run_auth_probe(ctx: SuiteContext, client: httpx.Client, probe: AuthProbe) -> TestResult:
    names = _names(ctx)
    method = probe.method.upper()
    path = fill(probe.path, **names)
    name = probe.label()
    started = time.monotonic()
    try:
        response = client.request(method, path, params=fill(probe.params, **names),
                                  json=fill(probe.json_body, **names))  # fmt: skip
    except httpx.TransportError as e:
        return TestResult(name, "failed", time.monotonic() - started, severity="critical",
                          category="auth", error_message=f"{method} {path}: {_transport_reason(e)}")  # fmt: skip
    info = {"endpoint": f"{method} {path}", "status": str(response.status_code)}
    elapsed = time.monotonic() - started
    if response.status_code in probe.refused:
        return TestResult(name, "passed", elapsed, category="auth", context=info)
    if response.status_code < 400:
        return TestResult(name, "failed", elapsed, severity="critical", category="auth",
                          context={**info, "expected": " or ".join(map(str, probe.refused))},
                          error_message=f"auth bypass: {method} {path} answered "
                          f"{response.status_code} without a token")  # fmt: skip
    return TestResult(name, "failed", elapsed, category="auth",
                      severity="critical" if response.status_code >= 500 else "high",
                      context={**info, "expected": " or ".join(map(str, probe.refused))},
                      error_message=f"{method} {path} answered {response.status_code} "
                      f"without a token, expected {' or '.join(map(str, probe.refused))}")  # fmt: skip


# -- contract ---------------------------------------------------------------------------

_CHECK_LINE = re.compile(r"^- (ST\d+ )?(.+)$")
_STATUS_LINE = re.compile(r"^\[(\d{3})\]")


def _contract_message(text: str) -> str:
    """'<check>: <detail>' for each distinct failed check of a Schemathesis failure
    text, joined with '; ' (e.g. 'Server error (500)', 'Response violates schema:
    "score" is a required property')."""
    lines = [ln.strip() for ln in text.splitlines()]
    found: list[str] = []
    for i, line in enumerate(lines):
        m = _CHECK_LINE.match(line)
        if not m or line.startswith("- -"):
            continue
        check = m.group(2).strip()
        detail = next((ln for ln in lines[i + 1 :] if ln), "")
        status = _STATUS_LINE.match(detail)
        if status:
            message = f"{check} ({status.group(1)})"
        elif detail and not detail.startswith(("Reproduce", "- ", "1.", "2.")):
            detail = detail if len(detail) <= 160 else detail[:159] + "…"
            message = f"{check}: {detail}"
        else:
            message = check
        if message not in found:
            found.append(message)
    if not found:
        return lines[0] if lines and lines[0] else "failed"
    return "; ".join(found)


def parse_contract_junit(path: Path) -> list[tuple[str, str | None, float]]:
    """(operation, failure message or None, seconds) per operation tested."""
    out: list[tuple[str, str | None, float]] = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        seconds = float(case.get("time", "0") or 0)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            out.append((name, _contract_message(bad.text or bad.get("message") or ""), seconds))
        elif case.find("skipped") is None:
            out.append((name, None, seconds))
    return out


def _contract_user(ctx: SuiteContext) -> Credentials | None:
    if ctx.credentials is None:
        return None
    if ctx.auth.signup is None:
        return ctx.credentials
    # a user of its own, so that what the generated requests create is easy to remove
    return Credentials(
        f"{ctx.test_prefix}contract", SecretStr(ctx.credentials.password.get_secret_value())
    )


def _owned_ids(
    client: httpx.Client, headers: dict[str, str], cleanup: Cleanup, prefix: str | None = None
) -> list[str]:
    """The ids of what the user owns (whose ``prefix_field`` starts with ``prefix``)."""
    try:
        listing = client.get(cleanup.list_path, headers=headers)
        items = extract(listing.json(), cleanup.items_path) if listing.status_code == 200 else []
    except (httpx.HTTPError, ValueError, JsonPathError):
        return []
    return [
        str(item[cleanup.id_field])
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
        and cleanup.id_field in item
        and (prefix is None or str(item.get(cleanup.prefix_field, "")).startswith(prefix))
    ]


def _clean_up(
    client: httpx.Client,
    headers: dict[str, str],
    cleanup: Cleanup,
    keep: Collection[str] = (),
    prefix: str | None = None,
) -> int:
    """Delete what the user owns (with ``prefix``), except ``keep``; the number deleted."""
    removed = 0
    for item_id in _owned_ids(client, headers, cleanup, prefix):
        if item_id in keep:
            continue
        try:
            if client.delete(
                cleanup.delete_path.replace("{id}", item_id), headers=headers
            ).is_success:
                removed += 1
        except httpx.HTTPError:
            pass
    return removed


def run_contract(ctx: SuiteContext, client: httpx.Client, contract: Contract) -> list[TestResult]:
    started = time.monotonic()
    headers: dict[str, str] = {}
    user = _contract_user(ctx) if contract.authenticated else None
    if user is not None:
        sub = dataclasses.replace(ctx, credentials=user)
        try:
            headers = login(sub, client)
        except AuthError as e:
            return [TestResult("contract", "failed", 0.0, severity="critical", category="auth",
                               error_message=ctx.scrub(f"contract testing could not log in: {e}"))]  # fmt: skip
    secrets = [v.split()[-1] for v in headers.values() if v.strip()]

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return ctx.scrub(text)

    schema = contract.schema_url or f"{ctx.base_url}{contract.schema_path}"
    out_dir = ctx.artifact_path("api", "contract")
    out_dir.mkdir(parents=True, exist_ok=True)
    junit = out_dir / "schemathesis-junit.xml"
    junit.unlink(missing_ok=True)
    exe = Path(sys.executable).with_name("st")
    argv = [str(exe) if exe.exists() else "st", "run", schema, "--url", ctx.base_url,
            "--checks", ",".join(contract.checks), "--max-examples", str(contract.max_examples),
            "--mode", contract.mode, "--phases", ",".join(contract.phases), "--no-color",
            "--report", "junit", "--report-junit-path", str(junit), "--max-failures", "1000",
            "--request-timeout", str(ctx.request_timeout), "--output-sanitize", "true",
            "--workers", "1"]  # fmt: skip
    if contract.seed is not None:
        argv += ["--seed", str(contract.seed), "--generation-deterministic"]
    for rx in contract.exclude_paths:
        argv += ["--exclude-path-regex", rx]
    for rx in contract.include_paths:
        argv += ["--include-path-regex", rx]
    # A dedicated contract user's records are all the run's; the test user's own
    # (no registration in the plan) that existed before are kept.
    keep: set[str] = set()
    if contract.cleanup is not None and headers and user is ctx.credentials:
        keep = set(_owned_ids(client, headers, contract.cleanup))
    env = dict(os.environ)
    if headers:
        # The token goes through the environment into Schemathesis' configuration,
        # never onto the command line (where ps shows it) or into a file.
        lines = []
        for i, (name, value) in enumerate(headers.items()):
            env[f"SCHOLAR_OPS_CONTRACT_HEADER_{i}"] = value
            lines.append(f'"{name}" = "${{SCHOLAR_OPS_CONTRACT_HEADER_{i}}}"')
        config = out_dir / "schemathesis.toml"
        config.write_text("[headers]\n" + "\n".join(lines) + "\n", encoding="utf-8")
        argv = [argv[0], "--config-file", str(config), *argv[1:]]
    limit = contract.timeout_seconds
    remaining = ctx.remaining()
    if remaining is not None:
        limit = max(1.0, min(limit, remaining - 2))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, env=env,
                              cwd=out_dir)  # fmt: skip
    except subprocess.TimeoutExpired:
        return [TestResult("contract", "error", time.monotonic() - started, severity="high",
                           category="contract",
                           error_message=f"contract testing did not finish within {limit:.0f} s")]  # fmt: skip
    finally:
        if contract.cleanup is not None and headers:
            removed = _clean_up(client, headers, contract.cleanup, keep)
            ctx.log(f"contract testing: removed {removed} record(s) it created")
    if not junit.exists():
        output = (proc.stderr or proc.stdout).strip().splitlines()
        tail = scrub(output[-1]) if output else ""
        return [TestResult("contract", "error", time.monotonic() - started, severity="high",
                           category="contract",
                           error_message=f"Schemathesis wrote no report (exit {proc.returncode}): {tail}")]  # fmt: skip
    results = []
    for operation, problem, seconds in parse_contract_junit(junit):
        name = f"contract {operation}"
        if problem is None:
            results.append(TestResult(name, "passed", seconds, category="contract",
                                      context={"endpoint": operation}))  # fmt: skip
            continue
        server_error = "server error" in problem.lower()
        results.append(TestResult(
            name, "failed", seconds, severity="critical" if server_error else "high",
            category="contract", error_message=scrub(f"{operation}: {problem}"),
            context={"endpoint": operation, "report": str(junit)},
        ))  # fmt: skip
    if not results:
        results.append(TestResult("contract", "failed", time.monotonic() - started, severity="high",
                                  category="contract",
                                  error_message=f"the schema at {schema} has no operation to test"))  # fmt: skip
    return results


# -- the suite ---------------------------------------------------------------------------


def _skipped(name: str, why: str) -> TestResult:
    return TestResult(name, "skipped", error_message=why)


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    reachable(ctx, settings.probe_path)
    suite = TestSuite("api")
    with ctx.client() as client:
        headers: dict[str, str] = {}
        if any(ep.auth for ep in settings.endpoints) and ctx.credentials is not None:
            started = time.monotonic()
            try:
                headers = login(ctx, client)
            except AuthError as e:
                suite.tests.append(TestResult("login", "failed", time.monotonic() - started,
                                              severity="critical", category="auth",
                                              error_message=ctx.scrub(str(e))))  # fmt: skip
        try:
            for ep in settings.endpoints:
                if ctx.out_of_time():
                    suite.tests.append(_skipped(ep.label(), "out of time"))
                elif ep.auth and ctx.credentials is not None and not headers:
                    suite.tests.append(_skipped(ep.label(), "the test user could not log in"))
                else:
                    suite.tests.append(run_endpoint(ctx, client, ep, headers))
        finally:
            if settings.cleanup is not None and headers:
                removed = _clean_up(client, headers, settings.cleanup, prefix=ctx.test_prefix)
                ctx.log(f"api: removed {removed} test record(s)")
        for probe in settings.auth_required:
            if ctx.out_of_time():
                suite.tests.append(_skipped(probe.label(), "out of time"))
            else:
                suite.tests.append(run_auth_probe(ctx, client, probe))
        contract = settings.contract
        if contract is not None and not (ctx.smoke and not contract.in_smoke):
            if ctx.out_of_time():
                suite.tests.append(_skipped("contract", "out of time"))
            else:
                try:
                    suite.tests.extend(run_contract(ctx, client, contract))
                except (httpx.TransportError, ServiceUnavailable) as e:
                    # verdicts were given already: the run is kept, the contract is an error
                    why = _transport_reason(e) if isinstance(e, httpx.TransportError) else e.reason
                    suite.tests.append(TestResult("contract", "error", severity="high",
                                                  category="contract",
                                                  error_message=f"contract testing: {why}"))  # fmt: skip
    return suite
