"""The integration suite: one user's journey across the services, with test data.

Steps (one TestResult each, in order): create a test user (named with the run's test
prefix; a random password, never logged), log in, upload a document holding a unique
token, find it by search, ask a question whose answer cites it, see the second ask
served from the cache, delete it, see it gone from search. A step that fails marks the
steps that depend on it ``skipped``, naming the step. Whatever happens, the document is
deleted and the user logged out afterwards (a cleanup that fails is a failed test).

Every path, field and JSON path is configuration; the defaults are the reference AI
Scholar application's. It has no way to delete a user: each run leaves its test user
(``<prefix><random>``) behind, owning nothing; a deployment that can delete users names
the request in ``delete_user``. With ``user: configured`` the plan's credentials are
used instead of a new user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, SecretStr

from scholar_ops.functest.auth import AuthError, login
from scholar_ops.functest.context import Credentials, SuiteContext, _transport_reason, reachable
from scholar_ops.functest.errors import ServiceUnavailable
from scholar_ops.functest.jsonpath import JsonPathError, extract
from scholar_ops.functest.models import Severity, TestResult, TestSuite
from scholar_ops.functest.settings import Strict, SuiteSettings


class UploadSettings(Strict):
    method: str = "POST"
    path: str = "/api/documents"
    title_field: str = "title"
    content_field: str = "content"
    #: more fields of the JSON body
    extra: dict[str, Any] = Field(default_factory=lambda: {"content_type": "text/plain"})
    #: where the new document's id is in the answer
    id_path: str = "$.id"


class SearchSettings(Strict):
    method: str = "POST"
    path: str = "/api/search"
    query_field: str = "query"
    extra: dict[str, Any] = Field(default_factory=lambda: {"top_k": 5})
    results_path: str = "$.results"
    #: the document id of one result, relative to the result
    document_id_path: str = "$.document_id"


class AskSettings(Strict):
    method: str = "POST"
    path: str = "/api/ask"
    question_field: str = "question"
    extra: dict[str, Any] = Field(default_factory=lambda: {"top_k": 5})
    #: the cited documents' ids (a list, or one value)
    sources_path: str = "$.sources[*].document_id"
    #: true when the answer came from the cache; null: no cache step
    cached_path: str | None = "$.cached"


class RequestSettings(Strict):
    method: str = "DELETE"
    #: ``{id}`` is the document's id
    path: str


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 120.0

    #: fresh: a new user per run (needs auth.register); configured: the plan's credentials;
    #: auto: fresh when the plan can register users, else configured
    user: Literal["auto", "fresh", "configured"] = "auto"
    upload: UploadSettings = Field(default_factory=UploadSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    ask: AskSettings = Field(default_factory=AskSettings)
    delete: RequestSettings = Field(
        default_factory=lambda: RequestSettings(method="DELETE", path="/api/documents/{id}")
    )
    #: POSTed (authenticated) at the end; null: no logout
    logout_path: str | None = "/api/auth/logout"
    #: a request deleting the test user at the end (the reference app has none)
    delete_user: RequestSettings | None = None
    #: ``{token}`` is the run's unique token (it starts with the test prefix)
    document_title: str = "{token} journey"
    document_text: str = (
        "{token} is a synthetic document written by the scholar-ops integration test. "
        "It holds no personal data. Photosynthesis converts light energy into chemical "
        "energy stored in glucose; chlorophyll absorbs mostly blue and red light."
    )
    search_query: str = "{token}"
    question: str = "What is {token}?"


# -- steps -----------------------------------------------------------------------------------

CREATE = "create test user"
LOGIN = "log in"
UPLOAD = "upload document"
SEARCH = "search finds the document"
ASK = "ask cites the document"
CACHED = "second ask served from the cache"
DELETE = "delete document"
GONE = "search no longer finds the document"


class _Fail(Exception):
    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: str(v) for k, v in context.items() if v is not None}


class _Skip(Exception):
    """The step does not apply (not a failure, blocks nothing)."""


@dataclass
class _Journey:
    ctx: SuiteContext
    settings: Settings
    client: httpx.Client
    token: str
    username: str
    password: SecretStr | None
    #: where the new user registers (None: the plan's user is used)
    register_path: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    doc_id: Any = None
    deleted: bool = False
    first_ask_cached: Any = None

    def fill(self, text: str, **more: str) -> str:
        names = {"token": self.token, "prefix": self.ctx.test_prefix, **more}
        for k, v in names.items():
            text = text.replace("{" + k + "}", v)
        return text

    def call(
        self, method: str, path: str, *, json: Any = None, auth: bool = True
    ) -> httpx.Response:
        endpoint = f"{method.upper()} {path}"
        try:
            return self.client.request(
                method.upper(), path, json=json, headers=self.headers if auth else None
            )
        except httpx.TransportError as e:
            raise _Fail(
                f"{endpoint}: {_transport_reason(e)}", endpoint=endpoint, actual="no answer"
            ) from None

    def expect_ok(self, response: httpx.Response, method: str, path: str, expected: str) -> Any:
        """The JSON of a 2xx answer (None when it has none); else a failure naming the status."""
        endpoint = f"{method.upper()} {path}"
        if not response.is_success:
            raise _Fail(
                f"{endpoint} answered HTTP {response.status_code}, expected {expected}",
                endpoint=endpoint,
                expected=expected,
                actual=f"HTTP {response.status_code}",
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return None


def _path(doc: Any, path: str, endpoint: str) -> Any:
    try:
        return extract(doc, path)
    except JsonPathError as e:
        raise _Fail(
            f"{endpoint}: the answer has no {path} ({e})", endpoint=endpoint, expected=path
        ) from None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ids(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:10])
    return f"[{shown}{', ...' if len(values) > 10 else ''}]"


def _create_user(j: _Journey) -> dict[str, Any]:
    auth = j.ctx.auth
    if j.password is None or j.register_path is None:
        raise _Skip("the plan's configured test user is used")
    path = j.register_path
    body = {
        auth.login.username_field: j.username,
        auth.login.password_field: j.password.get_secret_value(),
    }
    r = j.call("POST", path, json=body, auth=False)
    if r.status_code == 409:
        raise _Fail(
            f"POST {path}: the test user name {j.username} is taken",
            endpoint=f"POST {path}",
            actual="HTTP 409",
        )
    j.expect_ok(r, "POST", path, "2xx")
    return {"endpoint": f"POST {path}", "username": j.username}


def _login(j: _Journey) -> dict[str, Any]:
    path = j.ctx.auth.login.path
    try:
        j.headers = login(j.ctx, j.client)
    except (AuthError, ServiceUnavailable) as e:
        raise _Fail(str(e), endpoint=f"POST {path}") from None
    return {"endpoint": f"POST {path}", "username": j.username}


def _upload(j: _Journey) -> dict[str, Any]:
    s = j.settings.upload
    body = {
        **s.extra,
        s.title_field: j.fill(j.settings.document_title),
        s.content_field: j.fill(j.settings.document_text),
    }
    r = j.call(s.method, s.path, json=body)
    doc = j.expect_ok(r, s.method, s.path, "2xx")
    endpoint = f"{s.method} {s.path}"
    doc_id = _path(doc, s.id_path, endpoint)
    if doc_id is None or isinstance(doc_id, (list, dict)) or str(doc_id) == "":
        raise _Fail(f"{endpoint}: {s.id_path} is not a document id", endpoint=endpoint)
    j.doc_id = doc_id
    return {"endpoint": endpoint, "document_id": doc_id}


def _search_ids(j: _Journey) -> tuple[list[Any], str]:
    s = j.settings.search
    endpoint = f"{s.method} {s.path}"
    r = j.call(s.method, s.path, json={**s.extra, s.query_field: j.fill(j.settings.search_query)})
    doc = j.expect_ok(r, s.method, s.path, "2xx")
    results = _path(doc, s.results_path, endpoint)
    if not isinstance(results, list):
        raise _Fail(f"{endpoint}: {s.results_path} is not a list", endpoint=endpoint)
    return [_path(item, s.document_id_path, endpoint) for item in results], endpoint


def _search_finds(j: _Journey) -> dict[str, Any]:
    ids, endpoint = _search_ids(j)
    if str(j.doc_id) not in {str(i) for i in ids}:
        raise _Fail(
            f"searching for the document's unique token did not return document {j.doc_id} "
            f"({len(ids)} results, documents {_ids(ids)})",
            endpoint=endpoint,
            expected=f"document {j.doc_id} among the results",
            actual=f"documents {_ids(ids)}",
        )
    return {"endpoint": endpoint, "results": len(ids)}


def _ask(j: _Journey) -> tuple[Any, list[Any], str]:
    s = j.settings.ask
    endpoint = f"{s.method} {s.path}"
    question = j.fill(j.settings.question)
    r = j.call(s.method, s.path, json={**s.extra, s.question_field: question})
    doc = j.expect_ok(r, s.method, s.path, "2xx")
    sources = _as_list(_path(doc, s.sources_path, endpoint))
    return doc, sources, endpoint


def _ask_cites(j: _Journey) -> dict[str, Any]:
    doc, sources, endpoint = _ask(j)
    if str(j.doc_id) not in {str(x) for x in sources}:
        raise _Fail(
            f"the answer does not cite document {j.doc_id} (sources: documents {_ids(sources)})",
            endpoint=endpoint,
            expected=f"document {j.doc_id} among the sources",
            actual=f"documents {_ids(sources)}",
        )
    cached_path = j.settings.ask.cached_path
    if cached_path:
        try:
            j.first_ask_cached = extract(doc, cached_path)
        except JsonPathError:
            j.first_ask_cached = None
    return {"endpoint": endpoint, "sources": len(sources)}


def _ask_cached(j: _Journey) -> dict[str, Any]:
    cached_path = j.settings.ask.cached_path
    if not cached_path:
        raise _Skip("the plan checks no cache (ask.cached_path is null)")
    doc, _sources, endpoint = _ask(j)
    cached = _path(doc, cached_path, endpoint)
    if cached is not True:
        raise _Fail(
            f"the second identical ask was not served from the cache ({cached_path} = {cached!r})",
            endpoint=endpoint,
            expected=f"{cached_path} = true",
            actual=f"{cached_path} = {cached!r}",
        )
    return {"endpoint": endpoint, "first_ask_cached": j.first_ask_cached}


def _delete_document(j: _Journey) -> dict[str, Any]:
    s = j.settings.delete
    path = j.fill(s.path, id=str(j.doc_id))
    r = j.call(s.method, path)
    j.expect_ok(r, s.method, path, "2xx")
    j.deleted = True
    return {"endpoint": f"{s.method} {path}"}


def _search_gone(j: _Journey) -> dict[str, Any]:
    ids, endpoint = _search_ids(j)
    if str(j.doc_id) in {str(i) for i in ids}:
        raise _Fail(
            f"search still returns deleted document {j.doc_id}",
            endpoint=endpoint,
            expected=f"document {j.doc_id} absent",
            actual=f"documents {_ids(ids)}",
        )
    return {"endpoint": endpoint, "results": len(ids)}


#: (name, severity, the step it needs, body)
STEPS: list[tuple[str, Severity, str | None, Callable[[_Journey], dict[str, Any]]]] = [
    (CREATE, "critical", None, _create_user),
    (LOGIN, "critical", CREATE, _login),
    (UPLOAD, "critical", LOGIN, _upload),
    (SEARCH, "critical", UPLOAD, _search_finds),
    (ASK, "critical", SEARCH, _ask_cites),
    (CACHED, "medium", ASK, _ask_cached),
    (DELETE, "critical", ASK, _delete_document),
    (GONE, "critical", DELETE, _search_gone),
]


# -- the suite -------------------------------------------------------------------------------


def _token(ctx: SuiteContext) -> str:
    run_part = re.sub(r"[^a-z0-9]", "", ctx.run_id.lower())[:8]
    return f"{ctx.test_prefix}{run_part + '-' if run_part else ''}{secrets.token_hex(4)}"


def _journey_context(
    ctx: SuiteContext, settings: Settings
) -> tuple[SuiteContext, str, SecretStr | None]:
    """The context the journey logs in with: a new user, or the plan's."""
    fresh = settings.user == "fresh" or (settings.user == "auto" and ctx.auth.signup is not None)
    if fresh:
        if ctx.auth.signup is None:
            raise _Fail("user: fresh needs auth.register in the plan (how to create a user)")
        username = f"{ctx.test_prefix}{secrets.token_hex(4)}"
        password = SecretStr(secrets.token_urlsafe(18))
        creds = Credentials(username=username, password=password)
        jctx = dataclasses.replace(
            ctx,
            credentials=creds,
            auth=ctx.auth.model_copy(update={"signup": None}),  # registered by the step
            secrets=(*ctx.secrets, password.get_secret_value()),
        )
        return jctx, username, password
    if ctx.credentials is None:
        raise _Fail("the plan has no credentials for the test user, and no auth.register")
    return ctx, ctx.credentials.username, None


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    started = time.monotonic()
    suite = TestSuite("integration")
    reachable(ctx, "/")  # ServiceUnavailable before any verdict
    try:
        jctx, username, password = _journey_context(ctx, settings)
    except _Fail as e:
        suite.tests = [
            TestResult(CREATE, "error", error_message=e.message, severity="critical",
                       category="configuration")
        ]  # fmt: skip
        return suite.finish(started, time.monotonic())

    results: list[TestResult] = []
    with jctx.client() as client:
        journey = _Journey(
            ctx=jctx,
            settings=settings,
            client=client,
            token=_token(ctx),
            username=username,
            password=password,
            register_path=ctx.auth.signup.path if ctx.auth.signup and password else None,
        )
        blocked: dict[str, str] = {}  # step -> why it did not complete
        try:
            for name, severity, needs, body in STEPS:
                if needs is not None and needs in blocked:
                    reason = f"skipped: '{needs}' did not pass"
                    blocked[name] = reason
                    results.append(
                        TestResult(name, "skipped", error_message=reason, severity=severity,
                                   category="journey")
                    )  # fmt: skip
                    continue
                if jctx.out_of_time():
                    blocked[name] = "out of time"
                    results.append(
                        TestResult(name, "skipped", error_message="the suite ran out of time",
                                   severity=severity, category="journey")
                    )  # fmt: skip
                    continue
                results.append(_step(journey, name, severity, body, blocked))
                ctx.log(f"integration: {name}: {results[-1].status}")
        finally:
            results += _cleanup(journey)
    suite.tests = results
    return suite.finish(started, time.monotonic())


def _step(
    j: _Journey,
    name: str,
    severity: Severity,
    body: Callable[[_Journey], dict[str, Any]],
    blocked: dict[str, str],
) -> TestResult:
    t0 = time.monotonic()
    scrub = j.ctx.scrub
    try:
        context = body(j)
    except _Skip as e:
        return TestResult(
            name, "skipped", duration=time.monotonic() - t0, error_message=str(e),
            severity=severity, category="journey",
        )  # fmt: skip
    except _Fail as e:
        blocked[name] = e.message
        return TestResult(
            name, "failed", duration=time.monotonic() - t0, error_message=scrub(e.message),
            severity=severity, category="journey",
            context={k: scrub(v) for k, v in e.context.items()},
        )  # fmt: skip
    except Exception as e:  # the test itself broke (not a verdict on the target)
        blocked[name] = type(e).__name__
        line = (str(e).strip().splitlines() or [""])[0]
        return TestResult(
            name, "error", duration=time.monotonic() - t0,
            error_message=scrub(f"{type(e).__name__}: {line}"), severity=severity,
            category="journey",
        )  # fmt: skip
    return TestResult(
        name, "passed", duration=time.monotonic() - t0, severity=severity, category="journey",
        context={k: scrub(str(v)) for k, v in context.items() if v is not None},
    )  # fmt: skip


def _cleanup(j: _Journey) -> list[TestResult]:
    """Delete the document if it is still there, delete the user when the plan says how,
    log out. Only a cleanup that was needed and failed (or succeeded) is reported."""
    out: list[TestResult] = []
    if j.doc_id is not None and not j.deleted and j.headers:
        t0 = time.monotonic()
        s = j.settings.delete
        path = j.fill(s.path, id=str(j.doc_id))
        try:
            r = j.call(s.method, path)
            ok = r.is_success or r.status_code == 404
            message = None if ok else f"{s.method} {path} answered HTTP {r.status_code}"
        except _Fail as e:
            ok, message = False, e.message
        out.append(
            TestResult(
                "cleanup removes the test document", "passed" if ok else "failed",
                duration=time.monotonic() - t0,
                error_message=None if ok else j.ctx.scrub(
                    f"test document {j.doc_id} ({j.token}) was left behind: {message}"
                ),
                severity="high", category="cleanup",
                context={"endpoint": f"{s.method} {path}", "document_id": str(j.doc_id)},
            )
        )  # fmt: skip
    if j.headers and j.settings.delete_user is not None and j.password is not None:
        t0 = time.monotonic()
        du = j.settings.delete_user
        path = j.fill(du.path, username=j.username)
        try:
            r = j.call(du.method, path)
            ok = r.is_success
            message = None if ok else f"{du.method} {path} answered HTTP {r.status_code}"
        except _Fail as e:
            ok, message = False, e.message
        out.append(
            TestResult(
                "cleanup removes the test user", "passed" if ok else "failed",
                duration=time.monotonic() - t0,
                error_message=None if ok else j.ctx.scrub(
                    f"test user {j.username} was left behind: {message}"
                ),
                severity="low", category="cleanup",
                context={"endpoint": f"{du.method} {path}"},
            )
        )  # fmt: skip
    if j.headers and j.settings.logout_path:
        with contextlib.suppress(httpx.HTTPError):
            j.client.post(j.settings.logout_path, headers=j.headers)
        j.headers = {}
    return out
