"""The ui suite: Playwright for Python driving Debian's Chromium (never a downloaded one).

Two kinds of tests, one TestResult each, all in one browser per run:

- ``pages``: each page loads with no console error, no uncaught exception and no failed
  request (a network failure anywhere, or an answer >= 400 from the target's own origin),
  shows the ``expect_visible`` elements and the expected title. Errors are severity
  high, a page that does not load critical, console warnings only low.
- ``journeys``: steps (goto, fill, click, upload, press, expect_visible, expect_text,
  expect_count, wait_ms) in a fresh browser context; ``login: true`` runs the section's
  ``login_steps`` first. A failing step fails the journey (severity critical) naming the
  step, its selector, what was expected and what was there.

Strings may use ``{prefix}`` (the run's test prefix), ``{token}`` (unique to the run, starts
with the prefix), ``{username}`` and, in a ``fill`` value only, ``{password}``.

A failed journey keeps a PNG screenshot and a Playwright trace (zip) under the run's
artifacts (``ui/``). The password never reaches them: login steps and the journey's steps
up to its last ``{password}`` step are not traced, password inputs are emptied before
tracing starts and before the screenshot, and a saved trace has every form of the
password replaced by ``***`` (and is withheld if that cannot be verified). ``cleanup``
deletes the documents the journeys uploaded (titles starting with the prefix) through the
API with the same credentials.

Playwright's sync API refuses to run in a thread with a running asyncio loop, so the body
runs in a thread of its own.
"""

from __future__ import annotations

import contextlib
import html
import json
import mimetypes
import re
import secrets
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import httpx
from pydantic import Field, model_validator

from scholar_ops.functest.auth import AuthError, login
from scholar_ops.functest.context import SuiteContext, _transport_reason, reachable
from scholar_ops.functest.jsonpath import JsonPathError, extract
from scholar_ops.functest.models import Severity, TestResult, TestSuite
from scholar_ops.functest.settings import Strict, SuiteSettings
from scholar_ops.functest.settings import fill as fill_names

DEFAULT_BROWSER = "/usr/bin/chromium"
#: always passed to Chromium (a container has no usable sandbox, GPU or big /dev/shm)
BROWSER_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-component-update",
    "--no-first-run",
    "--mute-audio",
)
PASSWORD = "{password}"
_ACTIONS = (
    "goto",
    "fill",
    "click",
    "upload",
    "press",
    "expect_visible",
    "expect_text",
    "expect_count",
    "wait_ms",
)
_TEXT_LIMIT = 200


# -- the plan section ------------------------------------------------------------------------


class ExpectText(Strict):
    selector: str
    contains: str


class ExpectCount(Strict):
    selector: str
    min: int = Field(default=1, ge=0)


class Press(Strict):
    selector: str
    key: str


class Step(Strict):
    """One action: exactly one of goto, fill (+ value), click, upload (+ filename,
    content), press, expect_visible, expect_text, expect_count, wait_ms."""

    goto: str | None = None
    fill: str | None = None
    value: str | None = None
    click: str | None = None
    upload: str | None = None
    filename: str | None = None
    content: str | None = None
    mime_type: str | None = None
    press: Press | None = None
    expect_visible: str | None = None
    expect_text: ExpectText | None = None
    expect_count: ExpectCount | None = None
    #: a fixed pause (discouraged: expect_* steps wait for what they look for)
    wait_ms: int | None = Field(default=None, ge=0, le=60_000)
    #: this step's limit (default: the section's step_timeout_seconds)
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in _ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(_ACTIONS)} (got {given})")
        if (self.value is not None) != (self.fill is not None):
            raise ValueError("value: goes with fill: (and fill: needs a value:)")
        upload_parts = (self.filename, self.content, self.mime_type)
        if self.upload is None and any(p is not None for p in upload_parts):
            raise ValueError("filename:, content: and mime_type: go with upload:")
        if self.upload is not None and (self.filename is None or self.content is None):
            raise ValueError("upload: needs filename: and content:")
        for name, text in self._strings():
            if PASSWORD in text and name != "value":
                raise ValueError(f"{PASSWORD} may only be used in a fill step's value")
        return self

    def _strings(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, v in self.model_dump(exclude_none=True).items():
            if isinstance(v, dict):
                out += [(f"{name}.{k}", str(x)) for k, x in v.items()]
            else:
                out.append((name, str(v)))
        return out

    @property
    def action(self) -> str:
        return next(a for a in _ACTIONS if getattr(self, a) is not None)

    @property
    def uses_password(self) -> bool:
        return self.value is not None and PASSWORD in self.value

    def selector(self) -> str | None:
        a = self.action
        if a in ("fill", "click", "upload", "expect_visible"):
            return str(getattr(self, a))
        if a in ("press", "expect_text", "expect_count"):
            return str(getattr(self, a).selector)
        return None

    def describe(self) -> str:
        a = self.action
        target = self.selector() or (self.goto if a == "goto" else f"{self.wait_ms} ms")
        return f"{a} {target}"


class PageCheck(Strict):
    path: str = "/"
    #: selectors that must be visible once the page has loaded
    expect_visible: list[str] = Field(default_factory=list)
    title_contains: str | None = None
    #: run the section's login_steps first (and check the page after them)
    login: bool = False

    @model_validator(mode="after")
    def _no_password(self) -> PageCheck:
        if PASSWORD in self.model_dump_json():
            raise ValueError(f"{PASSWORD} may only be used in a fill step's value")
        return self


class Journey(Strict):
    name: str = Field(min_length=1, max_length=64)
    #: run the section's login_steps first (not traced)
    login: bool = False
    steps: list[Step] = Field(min_length=1)


class CleanupSettings(Strict):
    """Delete the documents the journeys uploaded, through the API, logged in as the
    test user (the defaults are the reference AI Scholar application's)."""

    list_path: str = "/api/documents"
    items_path: str = "$.documents"
    title_field: str = "title"
    id_field: str = "id"
    #: ``{id}`` is the document's id
    delete_path: str = "/api/documents/{id}"
    #: documents whose title starts with this are deleted
    title_prefix: str = "{prefix}"


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 300.0

    #: the Chromium executable (Debian's package ``chromium``); Playwright never downloads one
    browser_path: str = DEFAULT_BROWSER
    #: more command-line switches for Chromium
    browser_args: list[str] = Field(default_factory=list)
    step_timeout_seconds: float = Field(default=5.0, gt=0)
    navigation_timeout_seconds: float = Field(default=15.0, gt=0)
    #: fail: a page whose console has warnings (and nothing worse) fails with severity low
    console_warnings: Literal["fail", "ignore"] = "fail"
    #: console messages and request URLs containing one of these are not reported
    ignore: list[str] = Field(default_factory=lambda: ["favicon.ico"])
    pages: list[PageCheck] = Field(default_factory=lambda: [PageCheck()])
    login_steps: list[Step] = Field(default_factory=list)
    journeys: list[Journey] = Field(default_factory=list)
    cleanup: CleanupSettings | None = None

    @model_validator(mode="after")
    def _login_defined(self) -> Settings:
        wanting = [f"page {p.path}" for p in self.pages if p.login]
        wanting += [f"journey {j.name}" for j in self.journeys if j.login]
        if wanting and not self.login_steps:
            raise ValueError(f"{wanting[0]} has login: true but login_steps is empty")
        names = [j.name for j in self.journeys]
        if len(set(names)) != len(names):
            raise ValueError("journey names must be unique")
        return self


# -- running ---------------------------------------------------------------------------------


class BrowserMissing(Exception):
    pass


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    """The suite, run in a thread of its own (no asyncio loop there: Playwright's sync
    API refuses to run beside one), joined within the suite's remaining time."""
    remaining = ctx.remaining()
    limit = settings.timeout() if remaining is None else max(0.0, remaining)
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["suite"] = _run(ctx, settings)
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=body, name="ui-suite", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        suite = TestSuite("ui", status="timed_out")
        suite.reason = f"the browser did not finish within {limit:.0f} s"
        return suite.finish(0.0, limit)
    if "error" in box:
        raise box["error"]
    result: TestSuite = box["suite"]
    return result


def browser_executable(path: str) -> str:
    """The Chromium to drive; BrowserMissing names the path and the Debian package."""
    found = path if Path(path).is_file() else shutil.which(path)
    if not found:
        raise BrowserMissing(
            f"Chromium not found at {path}: install Debian's chromium package "
            "(apt-get install chromium) or set suites.ui.browser_path"
        )
    return found


@dataclass
class _Run:
    ctx: SuiteContext
    settings: Settings
    names: dict[str, str]
    password: str | None
    browser: Any = None
    artifacts: list[str] = field(default_factory=list)

    def text(self, value: str) -> str:
        """``value`` with the placeholders filled (the password too: for fill only)."""
        names = dict(self.names)
        if self.password is not None:
            names["password"] = self.password
        result: str = fill_names(value, **names)
        return result

    def scrub(self, text: str, limit: int = _TEXT_LIMIT) -> str:
        if self.password:
            text = text.replace(self.password, "***")
        text = self.ctx.scrub(text)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def url(self, path: str) -> str:
        return urljoin(self.ctx.base_url.rstrip("/") + "/", self.text(path).lstrip("/"))

    def secret_values(self) -> list[str]:
        values = {s for s in self.ctx.secrets if s}
        if self.password:
            values.add(self.password)
        return sorted(values)

    def ignored(self, text: str) -> bool:
        return any(pattern in text for pattern in self.settings.ignore)

    def new_context(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(self.settings.step_timeout_seconds * 1000)
        context.set_default_navigation_timeout(self.settings.navigation_timeout_seconds * 1000)
        return context


def _token(ctx: SuiteContext) -> str:
    return f"{ctx.test_prefix}ui-{secrets.token_hex(4)}"


def _run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    started = time.monotonic()
    suite = TestSuite("ui")
    try:
        executable = browser_executable(settings.browser_path)
    except BrowserMissing as e:
        suite.status = "error"
        suite.reason = str(e)
        return suite.finish(started, time.monotonic())
    first = settings.pages[0].path if settings.pages else "/"
    reachable(ctx, first)  # ServiceUnavailable before any verdict
    creds = ctx.credentials
    r = _Run(
        ctx=ctx,
        settings=settings,
        names={
            "prefix": ctx.test_prefix,
            "token": _token(ctx),
            "username": creds.username if creds else "",
        },
        password=creds.password.get_secret_value() if creds else None,
    )
    if creds is not None and ctx.auth.signup is not None and _needs_login(settings):
        _ensure_user(ctx)

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    results: list[TestResult] = []
    journeys_ran = False
    with sync_playwright() as p:
        try:
            r.browser = p.chromium.launch(
                executable_path=executable,
                headless=True,
                args=[*BROWSER_ARGS, *settings.browser_args],
                timeout=60_000,
            )
        except PlaywrightError as e:
            suite.status = "error"
            suite.reason = f"Chromium at {executable} did not start: {_first_line(str(e))}"
            return suite.finish(started, time.monotonic())
        try:
            for check in settings.pages:
                name = f"page {check.path}"
                if ctx.out_of_time():
                    results.append(_out_of_time(name, "high", "page"))
                    continue
                results.append(_check_page(r, check))
                ctx.log(f"ui: {name}: {results[-1].status}")
            for journey in settings.journeys:
                name = f"journey {journey.name}"
                if ctx.out_of_time():
                    results.append(_out_of_time(name, "critical", "journey"))
                    continue
                journeys_ran = True
                results.append(_run_journey(r, journey))
                ctx.log(f"ui: {name}: {results[-1].status}")
        finally:
            try:
                r.browser.close()
            finally:
                if journeys_ran and settings.cleanup is not None:
                    results.append(_cleanup(r, settings.cleanup))
    suite.tests = results
    suite.artifacts = r.artifacts
    return suite.finish(started, time.monotonic())


def _needs_login(settings: Settings) -> bool:
    return any(p.login for p in settings.pages) or any(j.login for j in settings.journeys)


def _ensure_user(ctx: SuiteContext) -> None:
    """Register the test user through the API if it does not exist yet (auth.register),
    so that the browser can log in. A refusal is left for the journeys to report."""
    try:
        with ctx.client() as client:
            login(ctx, client)
    except AuthError:
        pass


def _out_of_time(name: str, severity: Severity, category: str) -> TestResult:
    return TestResult(
        name,
        "skipped",
        error_message="the suite ran out of time",
        severity=severity,
        category=category,
    )


def _first_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[0].strip() if lines else ""


# -- steps -----------------------------------------------------------------------------------


class StepFailed(Exception):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


def _timeout_ms(r: _Run, step: Step) -> float:
    return (step.timeout_seconds or r.settings.step_timeout_seconds) * 1000


def _what_is_there(r: _Run, page: Any, selector: str) -> str:
    """What the selector finds now: nothing, a hidden element, or its text."""
    try:
        locator = page.locator(selector)
        count = locator.count()
        if count == 0:
            return "no element matches"
        first = locator.first
        parts = [f"{count} element(s)"]
        if not first.is_visible():
            parts.append("not visible")
        text = r.scrub(first.inner_text(timeout=1000))
        parts.append(f"text {text!r}" if text else "no text")
        return ", ".join(parts)
    except Exception as e:
        return r.scrub(_first_line(str(e)))


def _poll(page: Any, timeout_ms: float, check: Any) -> bool:
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        page.wait_for_timeout(100)


def _do(r: _Run, page: Any, step: Step) -> None:
    """Perform one step; StepFailed says what was expected and what was there."""
    from playwright.sync_api import Error as PlaywrightError

    t = _timeout_ms(r, step)
    action = step.action
    selector = step.selector()
    try:
        if step.goto is not None:
            response = page.goto(
                r.url(step.goto), timeout=r.settings.navigation_timeout_seconds * 1000
            )
            if response is not None and response.status >= 400:
                raise StepFailed("the page to load", f"HTTP {response.status}")
        elif step.fill is not None and step.value is not None:
            page.locator(step.fill).first.fill(r.text(step.value), timeout=t)
        elif step.click is not None:
            page.locator(step.click).first.click(timeout=t)
        elif step.upload is not None and step.filename is not None:
            filename = r.text(step.filename)
            payload = {
                "name": filename,
                "mimeType": step.mime_type or _mime_type(filename),
                "buffer": r.text(step.content or "").encode("utf-8"),
            }
            page.locator(step.upload).first.set_input_files(payload, timeout=t)
        elif step.press is not None:
            page.locator(step.press.selector).first.press(step.press.key, timeout=t)
        elif step.expect_visible is not None:
            page.locator(step.expect_visible).first.wait_for(state="visible", timeout=t)
        elif step.expect_text is not None:
            want = r.text(step.expect_text.contains)
            locator = page.locator(step.expect_text.selector)
            if not _poll(page, t, lambda: any(want in x for x in locator.all_inner_texts())):
                raise StepFailed(
                    f"text containing {r.scrub(want)!r}",
                    _what_is_there(r, page, step.expect_text.selector),
                )
        elif step.expect_count is not None:
            locator = page.locator(step.expect_count.selector)
            least = step.expect_count.min
            if not _poll(page, t, lambda: locator.count() >= least):
                raise StepFailed(f"at least {least} element(s)", f"{locator.count()}")
        elif step.wait_ms is not None:
            page.wait_for_timeout(step.wait_ms)
    except PlaywrightError as e:
        expected = {
            "expect_visible": "a visible element",
            "goto": "the page to load",
        }.get(action, f"to {action} a visible, enabled element")
        actual = _what_is_there(r, page, selector) if selector else ""
        reason = r.scrub(_first_line(str(e)), 120)
        raise StepFailed(expected, f"{actual} ({reason})" if actual else reason) from None


def _mime_type(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    known = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain"}
    return known.get(suffix) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


_CLEAR_PASSWORD_INPUTS = (
    "() => { for (const e of document.querySelectorAll('input[type=password]')) e.value = ''; }"
)
_CLEAR_INPUTS_HOLDING = (
    "(secret) => { for (const e of document.querySelectorAll('input, textarea')) "
    "if (e.value && e.value.includes(secret)) e.value = ''; }"
)


def _clear_secrets(page: Any, password: str | None) -> None:
    """Empty password inputs (and any input holding the password): not traced, not shot."""
    try:
        page.evaluate(_CLEAR_PASSWORD_INPUTS)
        if password:
            page.evaluate(_CLEAR_INPUTS_HOLDING, password)
    except Exception:
        pass


# -- pages -----------------------------------------------------------------------------------


@dataclass
class _Observed:
    """What a page did while it loaded."""

    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    failed_urls: set[str] = field(default_factory=set)
    #: console errors about a URL (``Failed to load resource``), reported as requests
    resource_errors: list[tuple[str, str]] = field(default_factory=list)

    def clear(self) -> None:
        for lst in (self.console_errors, self.console_warnings, self.page_errors):
            lst.clear()
        self.failed_requests.clear()
        self.failed_urls.clear()
        self.resource_errors.clear()

    def errors(self) -> list[str]:
        """Console errors, less those that only repeat a failed request."""
        extra = [text for url, text in self.resource_errors if url not in self.failed_urls]
        return self.console_errors + extra


def _watch(r: _Run, page: Any) -> _Observed:
    seen = _Observed()
    base = urlsplit(r.ctx.base_url)
    origin = (base.scheme, base.netloc)

    def short_url(url: str) -> str:
        parts = urlsplit(url)
        return (
            parts.path or "/"
            if (parts.scheme, parts.netloc) == origin
            else f"{parts.scheme}://{parts.netloc}{parts.path}"
        )

    def on_console(msg: Any) -> None:
        text = msg.text
        location = (msg.location or {}).get("url", "") or ""
        if r.ignored(text) or r.ignored(location):
            return
        if msg.type == "error":
            if text.startswith("Failed to load resource") and location:
                seen.resource_errors.append((location, r.scrub(f"{text} ({short_url(location)})")))
            else:
                seen.console_errors.append(r.scrub(text))
        elif msg.type == "warning":
            seen.console_warnings.append(r.scrub(text))

    def on_page_error(error: Any) -> None:
        text = f"{getattr(error, 'name', '') or 'Error'}: {getattr(error, 'message', error)}"
        if not r.ignored(text):
            seen.page_errors.append(r.scrub(text))

    def on_request_failed(request: Any) -> None:
        if r.ignored(request.url):
            return
        seen.failed_urls.add(request.url)
        reason = request.failure or "failed"
        seen.failed_requests.append(r.scrub(f"{request.method} {short_url(request.url)}: {reason}"))

    def on_response(response: Any) -> None:
        url = response.url
        if response.status < 400 or r.ignored(url):
            return
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != origin:
            return
        seen.failed_urls.add(url)
        method = response.request.method
        seen.failed_requests.append(r.scrub(f"{method} {short_url(url)} -> HTTP {response.status}"))

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)
    return seen


def _check_page(r: _Run, check: PageCheck) -> TestResult:
    from playwright.sync_api import Error as PlaywrightError

    name = f"page {check.path}"
    t0 = time.monotonic()
    url = r.url(check.path)
    context = r.new_context()
    problems: list[str] = []
    severity: Severity = "high"
    info: dict[str, str] = {"url": urlsplit(url).path or "/"}
    try:
        page = context.new_page()
        seen = _watch(r, page)
        if check.login:
            try:
                for i, step in enumerate(r.settings.login_steps, 1):
                    try:
                        _do(r, page, step)
                    except StepFailed as e:
                        raise _LoginFailed(i, step, e) from None
            except _LoginFailed as e:
                return _failed(
                    r, name, "critical", "page", t0, f"login step {e.index} ({e.step.describe()}) "
                    f"failed: expected {e.failure.expected}, got {e.failure.actual}",
                    {**info, "step": f"login {e.index}", "action": e.step.action},
                )  # fmt: skip
            seen.clear()
        try:
            response = page.goto(url, wait_until="load")
        except PlaywrightError as e:
            return _failed(
                r, name, "critical", "page", t0,
                f"{check.path} did not load: {_first_line(str(e))}", info,
            )  # fmt: skip
        if response is not None and response.status >= 400:
            return _failed(
                r, name, "critical", "page", t0,
                f"{check.path} answered HTTP {response.status}",
                {**info, "expected": "HTTP < 400", "actual": f"HTTP {response.status}"},
            )  # fmt: skip
        with contextlib.suppress(PlaywrightError):  # late requests, scripts run after load
            page.wait_for_load_state("networkidle", timeout=5000)
        if check.title_contains is not None:
            title = page.title()
            want = r.text(check.title_contains)
            if want not in title:
                problems.append(f"title {r.scrub(title)!r} does not contain {want!r}")
        for selector in check.expect_visible:
            try:
                page.locator(selector).first.wait_for(
                    state="visible", timeout=r.settings.step_timeout_seconds * 1000
                )
            except PlaywrightError:
                problems.append(f"{selector} is not visible ({_what_is_there(r, page, selector)})")
        errors = seen.errors()
        if errors:
            problems.append(f"{len(errors)} console error(s), first: {errors[0]}")
            info["console_errors"] = r.scrub(" | ".join(errors[:3]), 300)
        if seen.page_errors:
            problems.append(
                f"{len(seen.page_errors)} uncaught exception(s), first: {seen.page_errors[0]}"
            )
            info["page_errors"] = r.scrub(" | ".join(seen.page_errors[:3]), 300)
        if seen.failed_requests:
            problems.append(
                f"{len(seen.failed_requests)} failed request(s), first: {seen.failed_requests[0]}"
            )
            info["failed_requests"] = r.scrub(" | ".join(seen.failed_requests[:3]), 300)
        if seen.console_warnings:
            info["console_warnings"] = r.scrub(" | ".join(seen.console_warnings[:3]), 300)
            if not problems and r.settings.console_warnings == "fail":
                severity = "low"
                problems.append(
                    f"{len(seen.console_warnings)} console warning(s), first: "
                    f"{seen.console_warnings[0]}"
                )
        if problems:
            return _failed(
                r, name, severity, "page", t0, f"{check.path}: " + "; ".join(problems), info
            )
        return TestResult(
            name, "passed", duration=time.monotonic() - t0, severity="high", category="page",
            context=info,
        )  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            context.close()


def _failed(
    r: _Run,
    name: str,
    severity: Severity,
    category: str,
    t0: float,
    message: str,
    context: dict[str, str],
) -> TestResult:
    return TestResult(
        name,
        "failed",
        duration=time.monotonic() - t0,
        error_message=r.scrub(message, 600),
        severity=severity,
        category=category,
        context={k: r.scrub(v, 300) for k, v in context.items()},
    )


class _LoginFailed(Exception):
    def __init__(self, index: int, step: Step, failure: StepFailed) -> None:
        super().__init__(str(failure))
        self.index = index
        self.step = step
        self.failure = failure


# -- journeys --------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "journey"


def _run_journey(r: _Run, journey: Journey) -> TestResult:
    """The journey's steps in a fresh browser context, traced from after its last
    password step; on failure a screenshot and the (redacted) trace are kept."""
    name = f"journey {journey.name}"
    t0 = time.monotonic()
    steps: list[tuple[str, int, Step]] = []
    if journey.login:
        steps += [("login step", i, s) for i, s in enumerate(r.settings.login_steps, 1)]
    n_login = len(steps)
    steps += [("step", i, s) for i, s in enumerate(journey.steps, 1)]
    last_secret = max((n for n, (_, _, s) in enumerate(steps) if s.uses_password), default=-1)
    # login steps are never traced, nor a journey's steps up to its last password step
    trace_from = max(last_secret + 1, n_login)
    # after a login, emptying the password inputs breaks nothing (and keeps it out of snapshots)
    clear_first = 0 <= last_secret < n_login
    if r.ctx.credentials is None and any(
        "{password}" in s.model_dump_json() or "{username}" in s.model_dump_json()
        for _, _, s in steps
    ):
        return TestResult(
            name, "error", duration=time.monotonic() - t0, severity="critical",
            category="configuration",
            error_message="the journey uses the test user, but the plan has no credentials",
        )  # fmt: skip
    context = r.new_context()
    tracing = False
    failure: tuple[str, int, Step, StepFailed] | None = None
    previous: Step | None = None
    page_errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: page_errors.append(r.scrub(str(getattr(e, "message", e)))))
        for n, (label, index, step) in enumerate(steps):
            if n == trace_from and not tracing:
                if clear_first:
                    _clear_secrets(page, r.password)
                context.tracing.start(screenshots=True, snapshots=True, title=name)
                tracing = True
            try:
                _do(r, page, step)
            except StepFailed as err:
                failure = (label, index, step, err)
                break
            previous = step
        if failure is None:
            return TestResult(
                name, "passed", duration=time.monotonic() - t0, severity="critical",
                category="journey", context={"steps": str(len(steps))},
            )  # fmt: skip
        label, index, step, failed = failure
        info: dict[str, str] = {
            "step": f"{label} {index}" if label != "step" else str(index),
            "action": step.action,
            "expected": r.scrub(failed.expected),
            "actual": r.scrub(failed.actual),
        }
        if step.selector():
            info["selector"] = str(step.selector())
        if previous is not None:
            info["after"] = r.scrub(previous.describe())
        if page_errors:
            info["page_errors"] = r.scrub(" | ".join(page_errors[:3]), 300)
        with contextlib.suppress(Exception):
            info["url"] = urlsplit(page.url).path or "/"
        slug = _slug(journey.name)
        trace = r.ctx.artifact_path("ui", f"journey-{slug}-trace.zip")
        if tracing:
            tracing = False
            context.tracing.stop(path=str(trace))
            if redact_trace(trace, r.secret_values()):
                info["trace"] = str(trace)
                r.artifacts.append(str(trace))
            else:
                trace.unlink(missing_ok=True)
                info["trace"] = "withheld: the password could not be removed from it"
        else:
            info["trace"] = "none: the steps up to the last password step are not traced"
        shot = r.ctx.artifact_path("ui", f"journey-{slug}.png")
        _clear_secrets(page, r.password)
        try:
            page.screenshot(path=str(shot), full_page=True, timeout=10_000)
            info["screenshot"] = str(shot)
            r.artifacts.append(str(shot))
        except Exception as err:
            info["screenshot"] = f"not taken: {r.scrub(_first_line(str(err)), 120)}"
        after = f" after {previous.describe()}" if previous is not None else ""
        where = f"{label} {index}"
        message = (
            f"{where} ({step.describe()}){after}: expected {failed.expected}, got {failed.actual}"
        )
        return _failed(r, name, "critical", "journey", t0, message, info)
    finally:
        try:
            if tracing:
                context.tracing.stop()  # passed: the trace is discarded
            context.close()
        except Exception:
            pass


# -- traces ----------------------------------------------------------------------------------


def _secret_forms(secret: str) -> list[bytes]:
    """The ways a secret may be written in a trace: as is, JSON-escaped (once and twice:
    log lines inside JSON), URL-encoded, HTML-escaped."""
    once = json.dumps(secret)[1:-1]
    forms = {
        secret,
        once,
        json.dumps(once)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
        html.escape(secret),
    }
    return sorted({f.encode("utf-8") for f in forms if f}, key=len, reverse=True)


def redact_trace(path: Path, secrets_: list[str]) -> bool:
    """Replace every form of each secret in every member of the zip by ``***``; True
    when none is left afterwards (a secret shorter than 4 characters cannot be
    replaced safely: then False, and the caller withholds the trace)."""
    forms: list[bytes] = []
    for s in secrets_:
        if not s:
            continue
        if len(s) < 4:
            return False
        forms += _secret_forms(s)
    forms.sort(key=len, reverse=True)
    if not forms:
        return True
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                data = src.read(info)
                for f in forms:
                    data = data.replace(f, b"***")
                dst.writestr(info, data)
        tmp.replace(path)
        with zipfile.ZipFile(path) as check:
            return not any(any(f in check.read(m) for f in forms) for m in check.infolist())
    except (OSError, zipfile.BadZipFile):
        tmp.unlink(missing_ok=True)
        return False


# -- cleanup ---------------------------------------------------------------------------------


def _cleanup(r: _Run, c: CleanupSettings) -> TestResult:
    """Delete the test user's documents whose title starts with the prefix."""
    name = "cleanup removes the test documents"
    t0 = time.monotonic()
    prefix = r.text(c.title_prefix)
    info = {"list": c.list_path, "title_prefix": prefix}
    if r.ctx.credentials is None:
        return _failed(r, name, "high", "cleanup", t0, "cleanup needs the plan's credentials", info)
    deleted, left = 0, []
    try:
        with r.ctx.client() as client:
            headers = login(r.ctx, client)
            response = client.get(c.list_path, headers=headers)
            if response.status_code >= 400:
                raise _CleanupError(f"GET {c.list_path} answered HTTP {response.status_code}")
            items = extract(response.json(), c.items_path)
            if not isinstance(items, list):
                raise _CleanupError(f"{c.items_path} of GET {c.list_path} is not a list")
            for item in items:
                if not isinstance(item, dict):
                    continue
                title = str(item.get(c.title_field, ""))
                if not title.startswith(prefix) or c.id_field not in item:
                    continue
                path = c.delete_path.replace("{id}", str(item[c.id_field]))
                answer = client.delete(path, headers=headers)
                if answer.is_success or answer.status_code == 404:
                    deleted += 1
                else:
                    left.append(f"DELETE {path} -> HTTP {answer.status_code}")
    except (_CleanupError, AuthError, JsonPathError, ValueError) as e:
        return _failed(r, name, "high", "cleanup", t0, f"test documents may be left: {e}", info)
    except httpx.TransportError as e:
        return _failed(
            r, name, "high", "cleanup", t0,
            f"test documents may be left: {_transport_reason(e)}", info,
        )  # fmt: skip
    except httpx.HTTPError as e:
        return _failed(r, name, "high", "cleanup", t0, f"test documents may be left: {e}", info)
    info["deleted"] = str(deleted)
    if left:
        return _failed(
            r, name, "high", "cleanup", t0,
            f"{len(left)} test document(s) left behind: {left[0]}", info,
        )  # fmt: skip
    return TestResult(
        name, "passed", duration=time.monotonic() - t0, severity="high", category="cleanup",
        context=info,
    )  # fmt: skip


class _CleanupError(Exception):
    pass
