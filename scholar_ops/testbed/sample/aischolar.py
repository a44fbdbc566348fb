"""A realistic, deterministic sample of the AI Scholar application's PostgreSQL data.

The AI Scholar backend keeps its users, the documents they upload, the documents cut
into chunks, one embedding per chunk (all-MiniLM-L6-v2, 384 dimensions, stored as
``real[]``) and a log of the questions asked. This module builds that schema, fills
it with generated data quickly (COPY), and applies a "typical day" of changes with
ordinary INSERT/UPDATE statements so rows move physically as they do in production.

Everything is deterministic: the same ``seed`` (and the same starting state, for the
daily churn) gives byte-identical table contents.

Invariants the tests rely on: a document's ``content`` is exactly the concatenation
of its chunks' ``text`` in ``chunk_index`` order, and every chunk has one embedding.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import psycopg

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIMS = 384
#: the last instant of the generated history; daily churn continues day by day after it
HISTORY_END = datetime(2025, 1, 1, tzinfo=UTC)
#: days of query log in a fresh sample
QUERY_LOG_DAYS = 21
#: documents per user
DOCUMENTS_PER_USER = 20
#: mean queries per user and day
QUERIES_PER_USER_DAY = 5

# A document is cut into ceil(length / _CHUNK_SIZE) chunks of about equal length
# (so 400-600 characters for documents longer than about 1.6 KB).
_CHUNK_SIZE = 550

# Bytes of database (pg_database_size) per generated document, all tables included,
# measured on PostgreSQL 15 with the default parameters (see scale_for_bytes).
_BYTES_PER_DOCUMENT = 12_000
_BYTES_EMPTY_DATABASE = 8_300_000

TABLES = ("users", "documents", "document_chunks", "embeddings", "query_log")

_SCHEMA_SQL = """
CREATE TABLE public.users (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    settings jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE public.documents (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES public.users (id),
    title text NOT NULL,
    source_url text,
    content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.document_chunks (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES public.documents (id) ON DELETE CASCADE,
    chunk_index integer NOT NULL,
    text text NOT NULL,
    token_count integer NOT NULL,
    UNIQUE (document_id, chunk_index)
);

CREATE TABLE public.embeddings (
    chunk_id bigint PRIMARY KEY REFERENCES public.document_chunks (id) ON DELETE CASCADE,
    model text NOT NULL,
    vector real[] NOT NULL
);

CREATE TABLE public.query_log (
    id bigserial PRIMARY KEY,
    user_id bigint REFERENCES public.users (id),
    query text NOT NULL,
    top_k integer NOT NULL,
    latency_ms real,
    created_at timestamptz NOT NULL DEFAULT now(),
    result_ids bigint[]
);

CREATE INDEX documents_user_id_idx ON public.documents (user_id);
CREATE INDEX query_log_created_at_idx ON public.query_log (created_at);
"""


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


_WORDS = _split(
    "retrieval augmented generation vector embedding transformer attention corpus "
    "citation scholar paper abstract method result dataset benchmark evaluation model "
    "training inference query document chunk index similarity cosine neighbour semantic "
    "lexical hybrid reranker encoder decoder token context window prompt answer evidence "
    "passage recall precision latency throughput baseline ablation hypothesis experiment "
    "analysis distribution sample variance gradient optimizer learning rate batch layer "
    "representation graph network language knowledge source claim author journal review "
    "survey framework pipeline approach technique performance accuracy error bias "
    "robustness generalization domain task question retrieval-based dense sparse "
    "approximate nearest search cluster centroid quantization memory cache storage"
)
_GLUE = _split(
    "the of and to in is that for on with as by this are be from at an it which we our "
    "these a its their than more most can may also not both each such into over between"
)
_FIRST = _split(
    "Ada Alan Grace Edsger Barbara Donald Leslie Margaret John Frances Tim Radia Yoshua "
    "Fei-Fei Geoffrey Daphne Judea Andrew Shafi Silvio Cynthia Whitfield Ivan Niklaus "
    "Ken Dennis Bjarne Guido Anders Linus Sophie Amara Chen Priya Olu Mateo Ingrid Yuki"
)
_LAST = _split(
    "Lovelace Turing Hopper Dijkstra Liskov Knuth Lamport Hamilton McCarthy Allen "
    "Berners-Lee Perlman Bengio Li Hinton Koller Pearl Ng Goldwasser Micali Dwork Diffie "
    "Sutherland Wirth Thompson Ritchie Stroustrup Rossum Hejlsberg Torvalds Martin Okafor "
    "Wang Sharma Adeyemi Garcia Larsen Tanaka"
)
# about 45% short function words, the rest topic words
_VOCABULARY = _GLUE * 2 + _WORDS
#: Public names of the vocabulary (the Redis/Chroma/uploads sample uses it too).
WORDS, GLUE = _WORDS, _GLUE
_DOMAINS = ("example.org", "uni.example.edu", "lab.example.com", "mail.example.net")
_SOURCES = ("arxiv", "acl", "neurips", "pubmed", "upload", "web")
_TAGS = ("nlp", "ir", "rag", "llm", "vision", "theory", "systems", "bio", "survey", "eval")
_QUESTION = (
    "what is",
    "how does",
    "compare",
    "summarize",
    "explain",
    "which papers discuss",
    "evidence for",
    "limitations of",
)


def _gaussian_table() -> list[str]:
    """65536 text values of a normal distribution with the spread of a unit vector's
    components (1/sqrt(384)), rounded to 6 decimals: one is picked per component by
    16 random bits, so generating a vector costs one C-level join."""
    dist = NormalDist(0.0, 1.0 / EMBEDDING_DIMS**0.5)
    return [f"{dist.inv_cdf((i + 0.5) / 65536):.6f}" for i in range(65536)]


_VECTOR_VALUES = _gaussian_table()
_VECTOR_FORMAT = f"<{EMBEDDING_DIMS}H"


def _vector(rng: random.Random) -> str:
    """A 384-dimension embedding as a PostgreSQL array literal."""
    picks = struct.unpack(_VECTOR_FORMAT, rng.randbytes(2 * EMBEDDING_DIMS))
    return "{" + ",".join(map(_VECTOR_VALUES.__getitem__, picks)) + "}"


# Binary COPY of the embeddings: the server need not parse 384 floats per row.
# Each element of a binary float4 array is its length (4) and the big-endian float.
_VECTOR_ELEMENTS = [struct.pack(">if", 4, float(v)) for v in _VECTOR_VALUES]
_FLOAT4_OID = 700
_BINARY_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_BINARY_COPY_TRAILER = struct.pack(">h", -1)


def _copy_embeddings(cur: psycopg.Cursor[Any], n_chunks: int, rng: random.Random) -> int:
    """COPY one embedding per chunk id 1..n_chunks, in binary."""
    model = EMBEDDING_MODEL.encode()
    array_header = struct.pack(">iiiii", 1, 0, _FLOAT4_OID, EMBEDDING_DIMS, 1)
    # after the chunk id: the model field, then the array field's length and header
    middle = (
        struct.pack(">i", len(model))
        + model
        + struct.pack(">i", len(array_header) + 8 * EMBEDDING_DIMS)
        + array_header
    )
    with cur.copy(
        "COPY public.embeddings (chunk_id, model, vector) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        batch = [_BINARY_COPY_HEADER]
        for chunk_id in range(1, n_chunks + 1):
            picks = struct.unpack(_VECTOR_FORMAT, rng.randbytes(2 * EMBEDDING_DIMS))
            batch.append(struct.pack(">hiq", 3, 8, chunk_id))  # 3 fields; bigint
            batch.append(middle)
            batch.append(b"".join(map(_VECTOR_ELEMENTS.__getitem__, picks)))
            if len(batch) >= 192:
                copy.write(b"".join(batch))
                batch.clear()
        batch.append(_BINARY_COPY_TRAILER)
        copy.write(b"".join(batch))
    return n_chunks


def _sentence(rng: random.Random) -> str:
    n = rng.randint(8, 22)
    words = rng.choices(_VOCABULARY, k=n)
    if n > 12 and rng.random() < 0.5:
        words[rng.randint(3, n - 4)] += ","
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _sentences(rng: random.Random, length: int) -> str:
    """Sentences of one paragraph, at least ``length`` characters."""
    out: list[str] = []
    total = 0
    while total < length:
        out.append(_sentence(rng))
        total += len(out[-1]) + 1
    return " ".join(out)


def _prose(rng: random.Random, length: int) -> str:
    """Paragraphs of sentences, at least ``length`` characters."""
    paragraphs: list[str] = []
    total = 0
    while total < length:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))
        paragraphs.append(para)
        total += len(para) + 2
    return "\n\n".join(paragraphs)


def _chunks(content: str) -> list[str]:
    """Consecutive slices of ``content`` (their concatenation is ``content``) of about
    equal length, at most about _CHUNK_SIZE characters, each cut after a whitespace."""
    n = max(1, -(-len(content) // _CHUNK_SIZE))
    out: list[str] = []
    start = 0
    for left in range(n, 1, -1):
        cut = start + (len(content) - start) // left
        while cut < len(content) - 1 and not content[cut].isspace():
            cut += 1
        out.append(content[start : cut + 1])
        start = cut + 1
    if start < len(content):
        out.append(content[start:])
    return out


def _token_count(text: str) -> int:
    return len(text.split()) * 4 // 3


def _title(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 8))]
    return " ".join(w.capitalize() for w in words)


def _document(rng: random.Random, doc_id: int, created: datetime) -> tuple[str, str, str, str]:
    """(title, source_url, content, metadata json) of one document."""
    source = rng.choice(_SOURCES)
    if source == "arxiv":
        url = f"https://arxiv.org/abs/{created:%y%m}.{rng.randint(0, 99999):05d}"
    elif source == "upload":
        url = f"s3://ai-scholar-uploads/{doc_id // 1000:04d}/{doc_id}.pdf"
    else:
        url = f"https://{source}.example.org/papers/{rng.randint(1, 10**7)}"
    metadata = {
        "source": source,
        "authors": [f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in range(rng.randint(1, 5))],
        "year": rng.randint(2012, 2024),
        "pages": rng.randint(4, 40),
        "language": "en",
        "tags": sorted(rng.sample(_TAGS, rng.randint(1, 3))),
        "mime": "application/pdf" if source in ("arxiv", "upload") else "text/html",
    }
    content = _prose(rng, rng.randint(1300, 2000))
    return _title(rng), url, content, json.dumps(metadata, sort_keys=True)


def _query_text(rng: random.Random) -> str:
    terms = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
    return f"{rng.choice(_QUESTION)} {terms}?"


def _result_ids(rng: random.Random, top_k: int, max_chunk_id: int) -> str:
    if max_chunk_id < 1:
        return "{}"
    ids = [rng.randint(1, max_chunk_id) for _ in range(top_k)]
    return "{" + ",".join(map(str, ids)) + "}"


def _latency(rng: random.Random) -> float:
    return round(rng.lognormvariate(4.2, 0.55), 2)


def create_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the AI Scholar tables and indexes in schema ``public`` (and commit)."""
    with conn.transaction():
        conn.execute(_SCHEMA_SQL)


def scale_for_bytes(target_bytes: int) -> int:
    """The ``documents`` argument of load_sample for a database of roughly
    ``target_bytes`` (pg_database_size, within about 15%)."""
    return max(
        DOCUMENTS_PER_USER, round((target_bytes - _BYTES_EMPTY_DATABASE) / _BYTES_PER_DOCUMENT)
    )


def _copy_rows(
    cur: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Iterator[Sequence[Any]]
) -> int:
    n = 0
    stmt = f"COPY public.{table} ({', '.join(columns)}) FROM STDIN"
    with cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def load_sample(
    conn: psycopg.Connection[Any], *, documents: int = 6000, seed: int = 0
) -> dict[str, int]:
    """Fill the (empty) tables made by create_schema with generated data, and commit.

    ``documents`` documents (about 4 chunks each, one embedding per chunk) owned by
    ``documents // 20`` users, and QUERY_LOG_DAYS days of query log ending at
    HISTORY_END (about 5 queries per user and day). Returns the row count per table.
    The default (6000 documents) makes a database of about 80 MB (pg_database_size).
    """
    rng = random.Random(seed)
    n_users = max(1, documents // DOCUMENTS_PER_USER)
    history_start = HISTORY_END - timedelta(days=400)

    users: list[tuple[int, str, str, datetime, str]] = []
    for uid in range(1, n_users + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first}.{last}.{uid}@{rng.choice(_DOMAINS)}".lower()
        created = history_start + timedelta(seconds=rng.randint(0, 300 * 86400))
        settings = {
            "theme": rng.choice(("light", "dark", "system")),
            "top_k": rng.choice((3, 5, 8, 10)),
            "model": rng.choice(("gpt-4o-mini", "llama-3-8b", "mistral-7b")),
            "notifications": rng.random() < 0.6,
        }
        users.append((uid, email, f"{first} {last}", created, json.dumps(settings, sort_keys=True)))

    counts: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        counts["users"] = _copy_rows(
            cur, "users", ("id", "email", "name", "created_at", "settings"), iter(users)
        )

        docs: list[tuple[int, list[str]]] = []  # (document id, chunk texts)

        def document_rows() -> Iterator[Sequence[Any]]:
            for doc_id in range(1, documents + 1):
                uid, _, _, user_created, _ = users[rng.randrange(n_users)]
                span = int((HISTORY_END - user_created).total_seconds())
                created = user_created + timedelta(seconds=rng.randint(0, span))
                updated = created + timedelta(seconds=rng.randint(0, 3600))
                title, url, content, meta = _document(rng, doc_id, created)
                docs.append((doc_id, _chunks(content)))
                yield (doc_id, uid, title, url, content, meta, created, updated)

        counts["documents"] = _copy_rows(
            cur,
            "documents",
            (
                "id",
                "user_id",
                "title",
                "source_url",
                "content",
                "metadata",
                "created_at",
                "updated_at",
            ),
            document_rows(),
        )

        def chunk_rows() -> Iterator[Sequence[Any]]:
            chunk_id = 0
            for doc_id, texts in docs:
                for index, text in enumerate(texts):
                    chunk_id += 1
                    yield (chunk_id, doc_id, index, text, _token_count(text))

        counts["document_chunks"] = _copy_rows(
            cur,
            "document_chunks",
            ("id", "document_id", "chunk_index", "text", "token_count"),
            chunk_rows(),
        )
        n_chunks = counts["document_chunks"]
        docs.clear()

        counts["embeddings"] = _copy_embeddings(cur, n_chunks, rng)

        def query_rows() -> Iterator[Sequence[Any]]:
            qid = 0
            first_day = HISTORY_END - timedelta(days=QUERY_LOG_DAYS)
            for day in range(QUERY_LOG_DAYS):
                day_start = first_day + timedelta(days=day)
                events: list[tuple[datetime, int]] = []
                for uid, _, _, user_created, _ in users:
                    if user_created >= day_start:
                        continue
                    for _ in range(rng.randint(0, 2 * QUERIES_PER_USER_DAY)):
                        events.append((day_start + timedelta(seconds=rng.randint(0, 86399)), uid))
                events.sort()
                for at, uid in events:
                    qid += 1
                    top_k = rng.choice((3, 5, 5, 8, 10))
                    yield (
                        qid,
                        uid,
                        _query_text(rng),
                        top_k,
                        _latency(rng),
                        at,
                        _result_ids(rng, top_k, n_chunks),
                    )

        counts["query_log"] = _copy_rows(
            cur,
            "query_log",
            ("id", "user_id", "query", "top_k", "latency_ms", "created_at", "result_ids"),
            query_rows(),
        )

        for table in ("users", "documents", "document_chunks", "query_log"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('public.{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM public.{table}), 1), "
                f"(SELECT count(*) > 0 FROM public.{table}))"
            )
    return counts


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Row count of every AI Scholar table."""
    out: dict[str, int] = {}
    for table in TABLES:
        row = conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def apply_daily_churn(
    conn: psycopg.Connection[Any],
    *,
    seed: int,
    new_documents_pct: float = 1.0,
    updated_documents_pct: float = 0.1,
    new_queries: int | None = None,
) -> dict[str, int]:
    """One typical day of AI Scholar activity, with ordinary INSERT and UPDATE
    statements, committed: the day after the newest query_log entry.

    - ``new_documents_pct`` % new documents (with their chunks and embeddings),
    - ``updated_documents_pct`` % of the existing documents partly rewritten: one or
      two of their chunks get new text (the document's content follows, updated_at is
      bumped) and those chunks' embeddings new vectors,
    - ``new_queries`` new query_log rows (default: 2% of the existing rows).

    Returns what changed: documents_inserted, chunks_inserted, embeddings_inserted,
    documents_updated, chunks_updated, embeddings_updated, queries_inserted.
    """
    rng = random.Random(seed)
    changed = dict.fromkeys(
        (
            "documents_inserted",
            "chunks_inserted",
            "embeddings_inserted",
            "documents_updated",
            "chunks_updated",
            "embeddings_updated",
            "queries_inserted",
        ),
        0,
    )
    with conn.transaction(), conn.cursor() as cur:
        row = cur.execute(
            "SELECT max(created_at), count(*) FROM public.query_log",
        ).fetchone()
        assert row is not None
        last_query, n_queries = row[0], int(row[1])
        newest = (
            last_query.astimezone(UTC)
            if last_query is not None
            else HISTORY_END - timedelta(days=1)
        )
        day_start = datetime(newest.year, newest.month, newest.day, tzinfo=UTC) + timedelta(days=1)

        def at() -> datetime:
            return day_start + timedelta(seconds=rng.randint(0, 86399))

        user_ids = [r[0] for r in cur.execute("SELECT id FROM public.users ORDER BY id")]
        doc_ids = [r[0] for r in cur.execute("SELECT id FROM public.documents ORDER BY id")]
        n_new = round(len(doc_ids) * new_documents_pct / 100) if user_ids else 0
        n_updated = round(len(doc_ids) * updated_documents_pct / 100)
        if new_queries is None:
            new_queries = round(n_queries * 0.02)

        # Documents partly rewritten (chosen among the existing ones, before inserting).
        for doc_id in sorted(rng.sample(doc_ids, min(n_updated, len(doc_ids)))):
            chunks = cur.execute(
                "SELECT id, chunk_index, text FROM public.document_chunks "
                "WHERE document_id = %s ORDER BY chunk_index",
                (doc_id,),
            ).fetchall()
            if not chunks:
                continue
            texts = [c[2] for c in chunks]
            first = rng.randrange(len(chunks))
            last = min(len(chunks) - 1, first + rng.randint(0, 1))
            for i in range(first, last + 1):
                text = _sentences(rng, rng.randint(400, 500))
                if i < len(chunks) - 1:
                    text += " "
                texts[i] = text
                cur.execute(
                    "UPDATE public.document_chunks SET text = %s, token_count = %s WHERE id = %s",
                    (text, _token_count(text), chunks[i][0]),
                )
                cur.execute(
                    "UPDATE public.embeddings SET vector = %s::real[] WHERE chunk_id = %s",
                    (_vector(rng), chunks[i][0]),
                )
                changed["chunks_updated"] += 1
                changed["embeddings_updated"] += cur.rowcount
            cur.execute(
                "UPDATE public.documents SET content = %s, updated_at = %s WHERE id = %s",
                ("".join(texts), at(), doc_id),
            )
            changed["documents_updated"] += 1

        # New documents, their chunks and embeddings.
        if n_new:
            new_doc_ids = [
                r[0]
                for r in cur.execute(
                    "SELECT nextval(pg_get_serial_sequence('public.documents', 'id')) "
                    "FROM generate_series(1, %s)",
                    (n_new,),
                )
            ]
            doc_rows: list[tuple[Any, ...]] = []
            chunk_rows: list[tuple[int, int, str]] = []
            for doc_id in new_doc_ids:
                created = at()
                title, url, content, meta = _document(rng, doc_id, created)
                doc_rows.append(
                    (rng.choice(user_ids), title, url, content, meta, created, created, doc_id)
                )
                chunk_rows.extend((doc_id, i, t) for i, t in enumerate(_chunks(content)))
            cur.executemany(
                "INSERT INTO public.documents (user_id, title, source_url, content, metadata, "
                "created_at, updated_at, id) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
                doc_rows,
            )
            chunk_ids = [
                r[0]
                for r in cur.execute(
                    "SELECT nextval(pg_get_serial_sequence('public.document_chunks', 'id')) "
                    "FROM generate_series(1, %s)",
                    (len(chunk_rows),),
                )
            ]
            cur.executemany(
                "INSERT INTO public.document_chunks (id, document_id, chunk_index, text, "
                "token_count) VALUES (%s, %s, %s, %s, %s)",
                [
                    (cid, doc_id, i, t, _token_count(t))
                    for cid, (doc_id, i, t) in zip(chunk_ids, chunk_rows, strict=True)
                ],
            )
            cur.executemany(
                "INSERT INTO public.embeddings (chunk_id, model, vector) VALUES (%s, %s, %s::real[])",
                [(cid, EMBEDDING_MODEL, _vector(rng)) for cid in chunk_ids],
            )
            changed["documents_inserted"] = len(doc_rows)
            changed["chunks_inserted"] = changed["embeddings_inserted"] = len(chunk_ids)

        # The day's questions.
        if new_queries and user_ids:
            row = cur.execute("SELECT coalesce(max(id), 0) FROM public.document_chunks").fetchone()
            max_chunk = int(row[0]) if row else 0
            times = sorted(at() for _ in range(new_queries))
            query_rows = []
            for t in times:
                top_k = rng.choice((3, 5, 5, 8, 10))
                query_rows.append(
                    (
                        rng.choice(user_ids),
                        _query_text(rng),
                        top_k,
                        _latency(rng),
                        t,
                        _result_ids(rng, top_k, max_chunk),
                    )
                )
            cur.executemany(
                "INSERT INTO public.query_log (user_id, query, top_k, latency_ms, created_at, "
                "result_ids) VALUES (%s, %s, %s, %s, %s, %s::bigint[])",
                query_rows,
            )
            changed["queries_inserted"] = len(query_rows)
    return changed
