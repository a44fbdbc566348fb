"""The pytest suite: operators' own pytest files, run against the target, read back from
their JUnit XML.

``sys.executable -m pytest <paths> -p no:cacheprovider --junitxml=<artifact> -q <args>``
runs in a child process (its own session, killed with its children when the suite's
time is up). Paths are absolute or relative to the working directory of the process
that runs the suite. Files given by name are collected whatever they are called; in a
directory pytest collects ``test_*.py`` (pass ``-o python_files=...`` in ``args`` for
other names). The child gets the target in its environment, nowhere else (never in its
command line or a log):

- ``SCHOLAR_OPS_TEST_BASE_URL``, ``SCHOLAR_OPS_TEST_PREFIX`` (start test records with it),
  ``SCHOLAR_OPS_TEST_RUN_ID``;
- ``SCHOLAR_OPS_TEST_USERNAME``, ``SCHOLAR_OPS_TEST_PASSWORD`` when the plan has credentials.

Each testcase is one TestResult (``<classname>.<name>``: failure -> failed, error ->
error, skipped -> skipped), its message's first line scrubbed of the run's secrets.
The JUnit XML and pytest's output (both scrubbed) are kept as artifacts. No test
collected (exit code 5) is one failed result; a missing path, or pytest unable to run,
is a suite error naming it.
"""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from scholar_ops.functest.context import SuiteContext, reachable
from scholar_ops.functest.models import Severity, TestResult, TestSuite
from scholar_ops.functest.settings import SuiteSettings

NO_TESTS_COLLECTED = 5
_MESSAGE_LIMIT = 300


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 600.0

    #: files or directories, absolute or relative to the working directory
    paths: list[str] = Field(min_length=1)
    #: more arguments for pytest (e.g. ["-k", "not slow", "-x"])
    args: list[str] = Field(default_factory=list)
    #: the severity of a failed test
    severity: Severity = "high"
    #: check that the target answers before running (unavailable, not failed, when down)
    probe: bool = True


def _one_line(text: str | None, limit: int = _MESSAGE_LIMIT) -> str:
    lines = [x.strip() for x in (text or "").strip().splitlines() if x.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _scrubber(ctx: SuiteContext) -> Callable[[str], str]:
    """The run's secrets (and the test password, even if the context lacks it) out."""
    password = ctx.credentials.password.get_secret_value() if ctx.credentials else ""
    # as is, and as XML writes it (the JUnit file)
    forms = sorted(
        {password, html.escape(password), html.escape(password, quote=False)} - {""},
        key=len,
        reverse=True,
    )

    def scrub(text: str) -> str:
        text = ctx.scrub(text)
        for form in forms:
            text = text.replace(form, "***")
        return text

    return scrub


def _child_env(ctx: SuiteContext) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(
        SCHOLAR_OPS_TEST_BASE_URL=ctx.base_url,
        SCHOLAR_OPS_TEST_PREFIX=ctx.test_prefix,
        SCHOLAR_OPS_TEST_RUN_ID=ctx.run_id,
        PYTHONDONTWRITEBYTECODE="1",
    )
    if ctx.credentials is not None:
        env["SCHOLAR_OPS_TEST_USERNAME"] = ctx.credentials.username
        env["SCHOLAR_OPS_TEST_PASSWORD"] = ctx.credentials.password.get_secret_value()
    else:
        env.pop("SCHOLAR_OPS_TEST_USERNAME", None)
        env.pop("SCHOLAR_OPS_TEST_PASSWORD", None)
    return env


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """The child and everything it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    started = time.monotonic()
    suite = TestSuite("pytest")
    scrub = _scrubber(ctx)
    paths = [Path(p).expanduser() for p in settings.paths]
    for given, path in zip(settings.paths, paths, strict=True):
        if not path.exists():
            suite.status = "error"
            suite.reason = (
                f"pytest path not found: {given} (paths are absolute or relative to "
                f"the working directory, {Path.cwd()})"
            )
            return suite.finish(started, time.monotonic())
    if settings.probe:
        reachable(ctx, "/")  # ServiceUnavailable before any verdict

    xml_path = ctx.artifact_path("pytest", "junit.xml")
    xml_path.unlink(missing_ok=True)
    output_path = ctx.artifact_path("pytest", "output.txt")
    remaining = ctx.remaining()
    limit = settings.timeout() if remaining is None else max(1.0, remaining - 2.0)
    argv = [
        sys.executable, "-m", "pytest", *(str(p.resolve()) for p in paths),
        "-p", "no:cacheprovider", f"--junitxml={xml_path}", "-q", *settings.args,
    ]  # fmt: skip
    ctx.log(f"pytest: running {len(paths)} path(s) within {limit:.0f} s")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_child_env(ctx),
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill(proc)
        output, _ = proc.communicate()
        _keep_output(ctx, suite, output_path, output)
        suite.status = "timed_out"
        suite.reason = f"pytest timed out: it did not finish within {limit:.0f} s and was stopped"
        return suite.finish(started, time.monotonic())
    _keep_output(ctx, suite, output_path, output)
    code = proc.returncode
    if code == NO_TESTS_COLLECTED:
        suite.tests = [
            TestResult(
                "pytest collected tests",
                "failed",
                duration=time.monotonic() - started,
                error_message=f"no tests were collected in {', '.join(settings.paths)}",
                severity=settings.severity,
                category="pytest",
                context={"paths": ", ".join(settings.paths), "exit_code": str(code)},
            )
        ]
        return suite.finish(started, time.monotonic())
    results = _parse_junit(ctx, xml_path, settings.severity) if xml_path.exists() else None
    if results is None:
        suite.status = "error"
        last = _last_line(output.decode("utf-8", "replace"))
        suite.reason = scrub(f"pytest exited with code {code} without a report: {last}")
        return suite.finish(started, time.monotonic())
    _scrub_file(ctx, xml_path)
    suite.artifacts.insert(0, str(xml_path))
    suite.tests = results
    if code not in (0, 1) and not results:
        suite.status = "error"
        suite.reason = scrub(
            f"pytest exited with code {code}: {_last_line(output.decode('utf-8', 'replace'))}"
        )
    return suite.finish(started, time.monotonic())


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return _one_line(lines[-1]) if lines else "(no output)"


def _keep_output(ctx: SuiteContext, suite: TestSuite, path: Path, output: bytes) -> None:
    scrub = _scrubber(ctx)
    path.write_text(scrub(output.decode("utf-8", "replace")), encoding="utf-8")
    suite.artifacts.append(str(path))


def _scrub_file(ctx: SuiteContext, path: Path) -> None:
    scrub = _scrubber(ctx)
    text = path.read_text(encoding="utf-8", errors="replace")
    scrubbed = scrub(text)
    if scrubbed != text:
        path.write_text(scrubbed, encoding="utf-8")


def _parse_junit(ctx: SuiteContext, path: Path, severity: Severity) -> list[TestResult] | None:
    """The testcases of a JUnit XML file, or None when it cannot be read."""
    scrub = _scrubber(ctx)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    results: list[TestResult] = []
    for case in root.iter("testcase"):
        classname = case.get("classname") or ""
        name = case.get("name") or "?"
        test_name = f"{classname}.{name}" if classname else name
        try:
            duration = float(case.get("time") or 0.0)
        except ValueError:
            duration = 0.0
        context = {"classname": classname} if classname else {}
        failure, error = case.find("failure"), case.find("error")
        skipped = case.find("skipped")
        if failure is not None or error is not None:
            element = failure if failure is not None else error
            assert element is not None
            message = _one_line(element.get("message") or element.text) or element.tag
            if element.get("type"):
                context["type"] = _one_line(element.get("type"), 100)
            results.append(
                TestResult(
                    test_name,
                    "failed" if failure is not None else "error",
                    duration=duration,
                    error_message=scrub(message),
                    severity=severity,
                    category="pytest",
                    context=context,
                )
            )
        elif skipped is not None:
            reason = _one_line(skipped.get("message") or skipped.text)
            results.append(
                TestResult(
                    test_name,
                    "skipped",
                    duration=duration,
                    error_message=scrub(reason) or None,
                    severity=severity,
                    category="pytest",
                    context=context,
                )
            )
        else:
            results.append(
                TestResult(
                    test_name,
                    "passed",
                    duration=duration,
                    severity=severity,
                    category="pytest",
                    context=context,
                )
            )
    return results
