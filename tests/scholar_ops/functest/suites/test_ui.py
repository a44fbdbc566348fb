"""The ui suite, driving Debian's Chromium: against a small static site (served by
``python -m http.server``) it reports console errors, uncaught exceptions, failed
requests and console warnings, runs journeys (one passes, broken ones fail naming the
step and keep a screenshot and a trace without the password); against the reference AI
Scholar application the pages and the login, upload, search and ask journeys pass, the
broken button fault fails the search journey, and the uploaded documents are removed.

One browser per suite run: the static site's suite runs once (module fixture), inside a
running asyncio loop, which is how a Prefect task thread calls it."""

from __future__ import annotations

import asyncio
import secrets
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from scholar_ops.functest.context import Credentials, SuiteContext
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.models import TestSuite
from scholar_ops.functest.settings import AuthSettings
from scholar_ops.functest.suites.ui import Settings, Step, redact_trace, run
from scholar_ops.sources.process import free_port, running_server

PNG = b"\x89PNG\r\n\x1a\n"

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>Static Scholar</title>
<link rel="icon" href="data:,"><script src="/app.js" defer></script></head>
<body>
<form onsubmit="return false">
  <input id="login-username" autocomplete="username">
  <input id="login-password" type="password" autocomplete="current-password">
  <button id="login-button" type="button">Sign in</button>
</form>
<div id="status"></div>
<input id="upload-file" type="file"><button id="upload-button" type="button">Upload</button>
<ul id="documents"></ul>
<input id="search-input"><button id="search-button" type="button">Search</button>
<button id="find-button" type="button">Find</button>
<ul id="search-results"></ul>
</body></html>
"""

# the search button has no handler (a broken button); find works; the password field
# keeps its value after signing in (so traces would hold it, were it not removed)
APP_JS = """
const $ = (id) => document.getElementById(id);
$("login-button").addEventListener("click", () => {
  if ($("login-password").value) $("status").textContent = "Signed in as " + $("login-username").value;
});
$("upload-button").addEventListener("click", async () => {
  const f = $("upload-file").files[0];
  const li = document.createElement("li");
  li.textContent = f.name + ": " + (await f.text()).split("\\n")[0];
  $("documents").appendChild(li);
});
$("find-button").addEventListener("click", () => {
  const q = $("search-input").value;
  $("search-results").innerHTML = "";
  for (const d of document.querySelectorAll("#documents li")) {
    if (d.textContent.includes(q)) {
      const li = document.createElement("li"); li.textContent = d.textContent;
      $("search-results").appendChild(li);
    }
  }
});
"""

PAGES = {
    "jserror.html": "<!doctype html><html><head><title>JS error</title>"
    '<link rel="icon" href="data:,"></head><body><p id="x">x</p>'
    "<script>console.error('the widget broke'); null.boom();</script></body></html>",
    "missing.html": "<!doctype html><html><head><title>Missing</title>"
    '<link rel="icon" href="data:,"><script src="/static/gone.js"></script></head>'
    "<body><p>x</p></body></html>",
    "warn.html": "<!doctype html><html><head><title>Warn</title>"
    '<link rel="icon" href="data:,"></head><body><p>x</p>'
    "<script>console.warn('deprecated call');</script></body></html>",
}

LOGIN_STEPS = [
    {"goto": "/"},
    {"fill": "#login-username", "value": "{username}"},
    {"fill": "#login-password", "value": "{password}"},
    {"click": "#login-button"},
    {"expect_text": {"selector": "#status", "contains": "Signed in"}},
]

STATIC_SECTION = {
    "step_timeout_seconds": 1.5,
    "login_steps": LOGIN_STEPS,
    "pages": [
        {"path": "/", "expect_visible": ["#login-button"], "title_contains": "Scholar"},
        {"path": "/jserror.html"},
        {"path": "/missing.html"},
        {"path": "/warn.html"},
        {"path": "/", "expect_visible": ["#no-such-element"], "title_contains": "Nope"},
    ],
    "journeys": [
        {
            "name": "upload and find",
            "login": True,
            "steps": [
                {"expect_text": {"selector": "#status", "contains": "Signed in as {username}"}},
                {
                    "upload": "#upload-file",
                    "filename": "{prefix}notes-{token}.md",
                    "content": "# {token}\n\nA note written by the test.\n",
                },
                {"click": "#upload-button"},
                {"expect_text": {"selector": "#documents", "contains": "{token}"}},
                {"fill": "#search-input", "value": "{token}"},
                {"click": "#find-button"},
                {"expect_count": {"selector": "#search-results li", "min": 1}},
                {"press": {"selector": "#search-input", "key": "Enter"}},
            ],
        },
        {
            "name": "search",
            "login": True,
            "steps": [
                {"fill": "#search-input", "value": "{token}"},
                {"click": "#search-button"},
                {"expect_text": {"selector": "#search-results", "contains": "{token}"}},
            ],
        },
        {
            # types the password itself: traced from the click on, so the password
            # field's value is in the DOM snapshots and must be removed from the trace
            "name": "inline login",
            "steps": [
                {"goto": "/"},
                {"fill": "#login-username", "value": "{username}"},
                {"fill": "#login-password", "value": "{password}"},
                {"click": "#login-button"},
                {"expect_text": {"selector": "#status", "contains": "Welcome back"}},
            ],
        },
        {"name": "missing element", "steps": [{"goto": "/"}, {"click": "#nowhere"}]},
    ],
}


def password_forms(password: str) -> list[bytes]:
    import json

    return [password.encode(), json.dumps(password)[1:-1].encode()]


@pytest.fixture(scope="module")
def static_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text(INDEX)
    (site / "app.js").write_text(APP_JS)
    for name, body in PAGES.items():
        (site / name).write_text(body)
    with running_server(
        "static site",
        lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        log_path=site.parent / "http.log",
    ) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def static_run(static_site, tmp_path_factory):
    """The suite run once against the static site, from inside a running asyncio loop."""
    password = f'pw"{secrets.token_hex(8)}\\Z'  # quotes and backslashes: escaped forms too
    artifacts = tmp_path_factory.mktemp("artifacts")
    ctx = SuiteContext(
        base_url=static_site,
        credentials=Credentials("sotest-uiuser", SecretStr(password)),
        artifact_dir=artifacts,
        secrets=(password,),
    )
    settings = Settings.model_validate(STATIC_SECTION)

    async def from_a_loop() -> TestSuite:
        return run(ctx, settings)

    suite = asyncio.run(from_a_loop())
    return suite, password, artifacts


def by_name(suite: TestSuite):
    out = {}
    for t in suite.tests:
        key = t.test_name
        while key in out:
            key += "'"
        out[key] = t
    return out


def test_a_clean_page_passes_with_its_elements_and_title(static_run):
    suite, _, _ = static_run
    t = by_name(suite)["page /"]
    assert t.status == "passed", (t.error_message, t.context)
    assert suite.total_tests == 9


def test_a_javascript_error_is_reported_with_the_console_error(static_run):
    t = by_name(static_run[0])["page /jserror.html"]
    assert t.status == "failed" and t.severity == "high"
    assert "console error" in t.error_message and "the widget broke" in t.error_message
    assert "uncaught exception" in t.error_message
    assert "TypeError" in t.context["page_errors"]


def test_a_missing_script_is_reported_as_a_failed_request(static_run):
    t = by_name(static_run[0])["page /missing.html"]
    assert t.status == "failed" and t.severity == "high"
    assert "GET /static/gone.js -> HTTP 404" in t.context["failed_requests"]
    assert "failed request" in t.error_message
    # the console's "Failed to load resource" repeats the request: not counted twice
    assert "console error" not in t.error_message


def test_a_console_warning_alone_fails_with_low_severity(static_run):
    t = by_name(static_run[0])["page /warn.html"]
    assert t.status == "failed" and t.severity == "low"
    assert "deprecated call" in t.error_message


def test_a_missing_element_and_a_wrong_title_are_named(static_run):
    t = by_name(static_run[0])["page /'"]
    assert t.status == "failed"
    assert "#no-such-element is not visible (no element matches)" in t.error_message
    assert "does not contain 'Nope'" in t.error_message


def test_a_working_journey_passes_and_keeps_no_artifacts(static_run):
    suite, _, artifacts = static_run
    t = by_name(suite)["journey upload and find"]
    assert t.status == "passed", (t.error_message, t.context)
    assert not list(artifacts.rglob("journey-upload-and-find*"))


def test_a_broken_button_fails_the_journey_naming_the_step_with_screenshot_and_trace(static_run):
    suite, password, _ = static_run
    t = by_name(suite)["journey search"]
    assert t.status == "failed" and t.severity == "critical" and t.category == "journey"
    assert t.context["step"] == "3" and t.context["action"] == "expect_text"
    assert t.context["selector"] == "#search-results"
    assert t.context["after"] == "click #search-button"
    assert (
        "sotest-ui-" in t.context["expected"]
        and t.context["actual"] == "1 element(s), not visible, no text"
    )
    assert "step 3 (expect_text #search-results) after click #search-button" in t.error_message
    shot, trace = Path(t.context["screenshot"]), Path(t.context["trace"])
    assert shot.read_bytes().startswith(PNG)
    assert {str(shot), str(trace)} <= set(suite.artifacts)
    with zipfile.ZipFile(trace) as z:
        names = z.namelist()
        assert "trace.trace" in names
        trace_text = z.read("trace.trace")
        assert b"#search-button" in trace_text  # the traced steps are there
        for member in names:
            data = z.read(member)
            for form in password_forms(password):
                assert form not in data, member


def test_a_trace_that_saw_the_password_is_redacted(static_run):
    suite, password, _ = static_run
    t = by_name(suite)["journey inline login"]
    assert t.status == "failed"
    assert t.context["step"] == "5" and "Welcome back" in t.context["expected"]
    assert "Signed in as sotest-uiuser" in t.context["actual"]
    trace = Path(t.context["trace"])
    with zipfile.ZipFile(trace) as z:
        members = {m: z.read(m) for m in z.namelist()}
    # the snapshot after the click held the password field's value: now ***
    assert b'__playwright_value_":"***"' in members["trace.trace"]
    for member, data in members.items():
        for form in password_forms(password):
            assert form not in data, member
    for text in (t.error_message, *t.context.values()):
        assert password not in text


def test_a_missing_element_names_the_selector(static_run):
    t = by_name(static_run[0])["journey missing element"]
    assert t.status == "failed"
    assert t.context["selector"] == "#nowhere" and t.context["action"] == "click"
    assert "no element matches" in t.context["actual"]


def test_redaction_refuses_a_secret_too_short_to_replace(tmp_path):
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "the secret is 'hunter2'")
    assert redact_trace(path, ["hunter2"]) is True
    assert b"hunter2" not in zipfile.ZipFile(path).read("a.txt")
    assert redact_trace(path, ["abc"]) is False


def test_a_missing_browser_is_one_clear_line(tmp_path):
    ctx = SuiteContext(base_url="http://127.0.0.1:9", artifact_dir=tmp_path)
    suite = run(ctx, Settings(browser_path="/nonexistent/chromium"))
    assert suite.status == "error" and suite.tests == []
    assert "/nonexistent/chromium" in str(suite.reason)
    assert "apt-get install chromium" in str(suite.reason)


def test_an_unreachable_site_is_unavailable_before_any_browser_starts(tmp_path):
    ctx = SuiteContext(base_url=f"http://127.0.0.1:{free_port()}", artifact_dir=tmp_path)
    with pytest.raises(ServiceUnavailable, match="connection refused"):
        run(ctx, Settings())


def test_steps_are_validated():
    with pytest.raises(ValidationError, match="exactly one of"):
        Step.model_validate({"click": "#a", "goto": "/"})
    with pytest.raises(ValidationError, match="only be used in a fill"):
        Step.model_validate({"expect_text": {"selector": "#a", "contains": "{password}"}})
    with pytest.raises(ValidationError, match="upload: needs"):
        Step.model_validate({"upload": "#f", "filename": "x.md"})
    with pytest.raises(ValidationError, match="login_steps is empty"):
        Settings.model_validate(
            {"journeys": [{"name": "a", "login": True, "steps": [{"goto": "/"}]}]}
        )


# -- the reference AI Scholar application ----------------------------------------------------

#: the plan section for the reference application (docs/testing.md shows the same)
REFERENCE_UI_YAML = """
ui:
  pages:
    - path: /
      expect_visible: ["#login-button"]
      title_contains: AI Scholar
  login_steps:
    - goto: /
    - fill: "#login-username"
      value: "{username}"
    - fill: "#login-password"
      value: "{password}"
    - click: "#login-button"
    - expect_text: {selector: "#status", contains: "Signed in as {username}"}
  journeys:
    - name: login
      login: true
      steps:
        - expect_visible: "#logout-button"
        - expect_visible: "#upload-button"
    - name: upload
      login: true
      steps:
        - upload: "#upload-file"
          filename: "{token}.md"
          content: |
            # {token}

            {token} is a note written by the scholar-ops UI test.
            Chlorophyll absorbs mostly blue and red light.
        - click: "#upload-button"
        - expect_text: {selector: "#status", contains: "Uploaded {token}.md"}
        - expect_text: {selector: "#documents", contains: "{token}.md"}
    - name: search
      login: true
      steps:
        - fill: "#search-input"
          value: "{token}"
        - click: "#search-button"
        - expect_text: {selector: "#search-results", contains: "{token}.md"}
    - name: ask
      login: true
      steps:
        - fill: "#ask-input"
          value: "What is {token}?"
        - click: "#ask-button"
        - expect_text: {selector: "#answer", contains: "{token}"}
        - expect_text: {selector: "#sources", contains: "{token}.md"}
  cleanup:
    list_path: /api/documents
    items_path: $.documents
    title_field: title
    id_field: id
    delete_path: /api/documents/{id}
    # only this suite's uploads ({token} is {prefix}ui-<hex>), not other suites' test data
    title_prefix: "{prefix}ui-"
"""

REGISTER = AuthSettings.model_validate({"register": {"path": "/api/auth/register"}})


def reference_section(**changes) -> Settings:
    section = yaml.safe_load(REFERENCE_UI_YAML)["ui"]
    section.update(changes)
    return Settings.model_validate(section)


def reference_ctx(app, artifacts: Path) -> tuple[SuiteContext, str]:
    password = "ui-" + secrets.token_urlsafe(12)
    ctx = SuiteContext(
        base_url=app.url,
        credentials=Credentials(f"sotest-ui{secrets.token_hex(4)}", SecretStr(password)),
        auth=REGISTER,  # the suite registers its test user through the API first
        artifact_dir=artifacts,
        secrets=(password,),
    )
    return ctx, password


def documents_titled(app, pattern: str) -> int:
    with psycopg.connect(app.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM documents WHERE title LIKE %s", (pattern,))
        found = row.fetchone()
        assert found is not None
        return int(found[0])


def test_the_reference_app_passes_pages_and_journeys_and_its_uploads_are_removed(
    aischolar_clean, tmp_path
):
    ctx, _ = reference_ctx(aischolar_clean, tmp_path)
    suite = run(ctx, reference_section())
    names = [t.test_name for t in suite.tests]
    assert names == [
        "page /",
        "journey login",
        "journey upload",
        "journey search",
        "journey ask",
        "cleanup removes the test documents",
    ]
    for t in suite.tests:
        assert t.status == "passed", (t.test_name, t.error_message, t.context)
    assert suite.status == "passed" and suite.artifacts == []
    assert suite.tests[-1].context["deleted"] == "1"
    assert documents_titled(aischolar_clean, "sotest-ui-%") == 0


def test_the_broken_button_fails_the_search_journey_naming_it(aischolar_clean, tmp_path):
    aischolar_clean.set_faults(broken_button=True)
    ctx, password = reference_ctx(aischolar_clean, tmp_path)
    section = yaml.safe_load(REFERENCE_UI_YAML)["ui"]
    journeys = [j for j in section["journeys"] if j["name"] in ("upload", "search")]
    suite = run(ctx, reference_section(journeys=journeys, pages=[], step_timeout_seconds=2))
    t = {x.test_name: x for x in suite.tests}
    assert t["journey upload"].status == "passed"
    search = t["journey search"]
    assert search.status == "failed" and search.severity == "critical"
    assert search.context["after"] == "click #search-button"
    assert search.context["selector"] == "#search-results"
    assert ".md" in search.context["expected"]
    assert "after click #search-button: expected text containing 'sotest-ui-" in str(
        search.error_message
    )
    assert t["cleanup removes the test documents"].status == "passed"
    assert documents_titled(aischolar_clean, "sotest-ui-%") == 0
    shot, trace = Path(search.context["screenshot"]), Path(search.context["trace"])
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 1000
    with zipfile.ZipFile(trace) as z:
        assert "trace.trace" in z.namelist()
        for member in z.namelist():
            assert password.encode() not in z.read(member), member
    assert suite.artifacts == [str(trace), str(shot)]
