"""The FastAPI application: auth, documents, search, ask, fault switches, health, frontend."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import (
    Depends,
    FastAPI,
    File,
    Form,
    Header,
    HTTPException,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from scholar_ops.aischolar.cache import Cache
from scholar_ops.aischolar.chunking import chunk_text, sentences
from scholar_ops.aischolar.db import Pool
from scholar_ops.aischolar.embedding import DIMENSION, embed, embed_one, tokens
from scholar_ops.aischolar.faults import (
    SLOW_SEARCH_SECONDS,
    Faults,
    rename_score,
    unbind_search_button,
)
from scholar_ops.aischolar.settings import Settings
from scholar_ops.aischolar.store import VectorStore, chunk_id

STATIC = Path(__file__).parent / "static"
ContentType = Literal["text/plain", "text/markdown"]


# -- request and response models (the OpenAPI schema) -------------------------------------


class Credentials(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class DocumentIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    content: str = Field(min_length=1, max_length=1_000_000)
    content_type: ContentType = "text/plain"


class DocumentOut(BaseModel):
    id: int
    title: str
    chunks: int
    content_type: str
    created_at: datetime


class DocumentFull(DocumentOut):
    content: str


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=20)


class SearchHit(BaseModel):
    chunk_id: int
    document_id: int
    title: str
    text: str
    score: float


class SearchOut(BaseModel):
    results: list[SearchHit]


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=20)


class Source(BaseModel):
    document_id: int
    title: str
    chunk_id: int


class AskOut(BaseModel):
    answer: str
    sources: list[Source]
    cached: bool


# -- passwords ---------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**12, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**12, r=8, p=1)
    return hmac.compare_digest(got.hex(), digest)


# -- the application -------------------------------------------------------------------------


class State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = Pool(settings.database_url)
        self.cache = Cache(
            settings.redis_url, settings.session_ttl_seconds, settings.answer_ttl_seconds
        )
        self.store: VectorStore | None = None

    def vectors(self) -> VectorStore:
        if self.store is None:
            self.store = VectorStore(self.settings.chroma, self.settings.collection)
        return self.store


def current_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """The signed-in user of a request (a Bearer token whose session is in Redis)."""
    state: State = request.app.state.aischolar
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "not signed in", headers={"WWW-Authenticate": "Bearer"})
    session = state.cache.session(authorization[7:].strip())
    if session is None:
        raise HTTPException(
            401, "session expired or unknown", headers={"WWW-Authenticate": "Bearer"}
        )
    return session


User = Annotated[dict[str, Any], Depends(current_user)]


def require_admin(request: Request, x_admin_token: Annotated[str | None, Header()] = None) -> None:
    expected = request.app.state.aischolar.settings.admin_token
    if not expected or not x_admin_token or not hmac.compare_digest(x_admin_token, expected):
        raise HTTPException(403, "admin token required")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    state = State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(state.pool.create_schema)
        await run_in_threadpool(state.vectors)
        yield
        state.pool.close()

    app = FastAPI(
        title="AI Scholar (reference application)",
        version="1.0.0",
        description="The reference target of scholar-ops' functionality tests.",
        lifespan=lifespan,
    )
    app.state.aischolar = state

    # -- auth
    @app.post("/api/auth/register", status_code=201, response_model=UserOut, tags=["auth"])
    def register(body: Credentials) -> UserOut:
        with state.pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO users (username, password_hash) VALUES (%s, %s) "
                "ON CONFLICT (username) DO NOTHING RETURNING id",
                (body.username, hash_password(body.password)),
            ).fetchone()
        if row is None:
            raise HTTPException(409, f"user {body.username} exists")
        return UserOut(id=row[0], username=body.username)

    @app.post(
        "/api/auth/login",
        response_model=TokenOut,
        tags=["auth"],
        responses={401: {"description": "wrong user name or password"}},
    )
    def login(body: Credentials) -> TokenOut:
        with state.pool.connection() as conn:
            row = conn.execute(
                "SELECT id, password_hash FROM users WHERE username = %s", (body.username,)
            ).fetchone()
        if row is None or not check_password(body.password, row[1]):
            raise HTTPException(401, "wrong user name or password")
        token = secrets.token_urlsafe(32)
        state.cache.new_session(token, row[0], body.username)
        return TokenOut(access_token=token, expires_in=settings.session_ttl_seconds)

    @app.post("/api/auth/logout", status_code=204, tags=["auth"])
    def logout(user: User, authorization: Annotated[str | None, Header()] = None) -> Response:
        state.cache.end_session((authorization or "")[7:].strip())
        return Response(status_code=204)

    @app.get("/api/me", response_model=UserOut, tags=["auth"])
    def me(user: User) -> UserOut:
        return UserOut(id=user["user_id"], username=user["username"])

    # -- documents
    def store_document(owner: int, title: str, content: str, content_type: str) -> DocumentOut:
        pieces = chunk_text(content)
        vectors = embed(pieces)
        with state.pool.connection() as conn:
            doc = conn.execute(
                "INSERT INTO documents (owner_id, title, content, content_type) "
                "VALUES (%s, %s, %s, %s) RETURNING id, created_at",
                (owner, title, content, content_type),
            ).fetchone()
            assert doc is not None
            ids = []
            for ordinal, text in enumerate(pieces):
                row = conn.execute(
                    "INSERT INTO chunks (document_id, ordinal, text, embedding_dim) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (doc[0], ordinal, text, DIMENSION),
                ).fetchone()
                assert row is not None
                ids.append(row[0])
            if not state.cache.faults().get("missing_vectors"):
                state.vectors().add(
                    [chunk_id(i) for i in ids],
                    vectors,
                    [
                        {"document_id": doc[0], "owner_id": owner, "ordinal": n}
                        for n in range(len(ids))
                    ],
                )
        state.cache.forget_answers(owner)
        return DocumentOut(
            id=doc[0], title=title, chunks=len(ids), content_type=content_type, created_at=doc[1]
        )

    @app.post("/api/documents", status_code=201, response_model=DocumentOut, tags=["documents"])
    def create_document(body: DocumentIn, user: User) -> DocumentOut:
        return store_document(user["user_id"], body.title, body.content, body.content_type)

    @app.post(
        "/api/documents/upload",
        status_code=201,
        response_model=DocumentOut,
        tags=["documents"],
        responses={415: {"description": "not a .txt or .md file"}},
    )
    def upload_document(
        user: User,
        file: Annotated[UploadFile, File()],
        title: Annotated[str | None, Form()] = None,
    ) -> DocumentOut:
        name = file.filename or "upload"
        suffix = os.path.splitext(name)[1].lower()
        if suffix not in (".txt", ".md", ".markdown"):
            raise HTTPException(415, "upload a .txt or .md file")
        raw = file.file.read(1_000_001)
        if len(raw) > 1_000_000:
            raise HTTPException(413, "files up to 1 MB")
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(415, "the file is not UTF-8 text") from None
        if not content.strip():
            raise HTTPException(422, "the file is empty")
        kind = "text/plain" if suffix == ".txt" else "text/markdown"
        return store_document(user["user_id"], (title or "").strip() or name, content, kind)

    @app.get("/api/documents", response_model=DocumentList, tags=["documents"])
    def list_documents(user: User) -> DocumentList:
        with state.pool.connection() as conn:
            rows = conn.execute(
                "SELECT d.id, d.title, count(c.id), d.content_type, d.created_at FROM documents d "
                "LEFT JOIN chunks c ON c.document_id = d.id WHERE d.owner_id = %s "
                "GROUP BY d.id ORDER BY d.id",
                (user["user_id"],),
            ).fetchall()
        return DocumentList(
            documents=[
                DocumentOut(id=r[0], title=r[1], chunks=r[2], content_type=r[3], created_at=r[4])
                for r in rows
            ]
        )

    @app.get(
        "/api/documents/{document_id}",
        response_model=DocumentFull,
        tags=["documents"],
        responses={404: {"description": "no such document of yours"}},
    )
    def get_document(document_id: int, user: User) -> DocumentFull:
        with state.pool.connection() as conn:
            r = conn.execute(
                "SELECT d.id, d.title, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id), "
                "d.content_type, d.created_at, d.content FROM documents d "
                "WHERE d.id = %s AND d.owner_id = %s",
                (document_id, user["user_id"]),
            ).fetchone()
        if r is None:
            raise HTTPException(404, "no such document")
        return DocumentFull(
            id=r[0], title=r[1], chunks=r[2], content_type=r[3], created_at=r[4], content=r[5]
        )

    @app.delete(
        "/api/documents/{document_id}",
        status_code=204,
        tags=["documents"],
        responses={404: {"description": "no such document of yours"}},
    )
    def delete_document(document_id: int, user: User) -> Response:
        with state.pool.connection() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                    "WHERE d.id = %s AND d.owner_id = %s",
                    (document_id, user["user_id"]),
                ).fetchall()
            ]
            gone = conn.execute(
                "DELETE FROM documents WHERE id = %s AND owner_id = %s RETURNING id",
                (document_id, user["user_id"]),
            ).fetchone()
            if gone is None:
                raise HTTPException(404, "no such document")
            state.vectors().delete([chunk_id(i) for i in ids])
        state.cache.forget_answers(user["user_id"])
        return Response(status_code=204)

    # -- search and ask
    def retrieve(owner: int, query: str, k: int) -> list[SearchHit]:
        nearest = state.vectors().query(embed_one(query), owner, k)
        if not nearest:
            return []
        pks = [int(i.removeprefix("chunk-")) for i, _ in nearest]
        with state.pool.connection() as conn:
            rows = conn.execute(
                "SELECT c.id, c.document_id, d.title, c.text FROM chunks c "
                "JOIN documents d ON d.id = c.document_id WHERE c.id = ANY(%s) AND d.owner_id = %s",
                (pks, owner),
            ).fetchall()
        by_id = {r[0]: r for r in rows}
        hits = []
        for (_, score), pk in zip(nearest, pks, strict=True):
            if pk in by_id:
                r = by_id[pk]
                hits.append(
                    SearchHit(chunk_id=r[0], document_id=r[1], title=r[2], text=r[3], score=score)
                )
        return hits

    @app.post("/api/search", response_model=SearchOut, tags=["search"])
    def search(body: SearchIn, user: User) -> Any:
        faults = state.cache.faults()
        if faults.get("search_500"):
            raise RuntimeError("injected fault: search_500")
        if faults.get("slow_search"):
            time.sleep(SLOW_SEARCH_SECONDS)
        hits = retrieve(user["user_id"], body.query, body.top_k)
        if faults.get("renamed_field"):
            # the contract break: bypass the response model, rename score
            return JSONResponse({"results": rename_score([h.model_dump() for h in hits])})
        return SearchOut(results=hits)

    @app.post(
        "/api/ask",
        response_model=AskOut,
        tags=["search"],
        responses={429: {"description": "too many questions this minute"}},
    )
    def ask(body: AskIn, user: User) -> Any:
        uid = user["user_id"]
        allowed, retry = state.cache.allow(uid, settings.rate_limit_per_minute)
        if not allowed:
            return JSONResponse(
                {"detail": "rate limit: too many questions this minute"},
                status_code=429,
                headers={"Retry-After": str(retry)},
            )
        cached = state.cache.answer(uid, body.question, body.top_k)
        if cached is not None:
            return AskOut(**{**cached, "cached": True})
        hits = retrieve(uid, body.question, body.top_k)
        wanted = set(tokens(body.question))
        scored = []
        for rank, h in enumerate(hits):
            for s in sentences(h.text):
                overlap = len(wanted & set(tokens(s)))
                scored.append((overlap, -rank, s, h))
        scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
        picked = [x for x in scored if x[0] > 0][:3] or scored[:1]
        answer = " ".join(x[2] for x in picked) if picked else "No documents answer this yet."
        sources, seen = [], set()
        for _, _, _, h in picked:
            if h.chunk_id not in seen:
                seen.add(h.chunk_id)
                sources.append(
                    Source(document_id=h.document_id, title=h.title, chunk_id=h.chunk_id)
                )
        out = AskOut(answer=answer, sources=sources, cached=False)
        state.cache.keep_answer(uid, body.question, body.top_k, out.model_dump())
        return out

    # -- fault switches (hidden from the schema)
    @app.get(
        "/api/admin/faults",
        response_model=Faults,
        include_in_schema=False,
        dependencies=[Depends(require_admin)],
    )
    def get_faults() -> Faults:
        return Faults(**state.cache.faults())

    @app.put(
        "/api/admin/faults",
        response_model=Faults,
        include_in_schema=False,
        dependencies=[Depends(require_admin)],
    )
    def put_faults(body: Faults) -> Faults:
        state.cache.set_faults(body.model_dump())
        return body

    # -- health
    @app.get("/health/live", tags=["health"])
    def live() -> dict[str, str]:
        """The process answers (nothing else is checked)."""
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["health"],
        responses={503: {"description": "a store does not answer"}},
    )
    def ready() -> JSONResponse:
        """Ready to serve: PostgreSQL, Redis and Chroma each answer."""
        checks: dict[str, str] = {}
        for name, probe in (
            ("postgres", lambda: state.pool.ping()),
            ("redis", lambda: state.cache.r.ping()),
            ("chroma", lambda: state.vectors().count()),
        ):
            try:
                probe()
                checks[name] = "ok"
            except Exception as e:
                checks[name] = f"unavailable: {type(e).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
            headers={"Cache-Control": "no-store"},
        )

    _mount_health(app, settings)

    # -- frontend
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/app.js", include_in_schema=False)
    def app_js() -> Response:
        js = (STATIC / "app.js").read_text(encoding="utf-8")
        if state.cache.faults().get("broken_button"):
            js = unbind_search_button(js)
        return Response(js, media_type="text/javascript", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RuntimeError)
    async def server_error(request: Request, exc: RuntimeError) -> JSONResponse:
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    return app


def _mount_health(app: FastAPI, settings: Settings) -> None:
    """The health router (scholar_ops.monitoring.health) with this app's stores."""
    from scholar_ops.monitoring.health.config import (
        ChromaSettings,
        HealthConfig,
        PostgresSettings,
        RedisSettings,
    )
    from scholar_ops.monitoring.health.router import health_router

    chroma = (
        ChromaSettings(url=settings.chroma)
        if settings.chroma.startswith(("http://", "https://"))
        else ChromaSettings(path=settings.chroma)
    )
    config = HealthConfig(
        postgres=PostgresSettings(dsn=settings.database_url),
        redis=RedisSettings(url=settings.redis_url),
        chroma=chroma,
        disk=None,
        system=None,
    )
    app.include_router(health_router(config, metrics_path=None))
