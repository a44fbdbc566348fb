"""The database suite: the target's data, checked where it is stored.

- PostgreSQL: Great Expectations 1.x expectations per table (not null, unique, value
  ranges, value sets, a minimum row count; scholar_ops.functest.expectations), references
  between tables (rows whose referenced row is missing, by SQL) and the embedding
  dimension recorded with each chunk.
- Redis: keys matching the configured patterns carry a TTL (SCAN, never KEYS, up to a
  bound), memory used below a limit.
- Chroma: collections exist, hold at least a number of vectors, of the expected dimension.
- Cross-store consistency: every id a PostgreSQL query yields has its vector in a Chroma
  collection, and no vector of that collection is orphaned. Both sides are streamed in
  batches (a server-side cursor; Chroma pages), suspects are checked again once before
  they are reported (a write in flight is not an inconsistency).

Stores come from the context (``ctx.stores``): a section that needs a store the context
lacks is one errored test; a store that cannot be reached raises ServiceUnavailable
before any verdict. No message carries a DSN, a URL's password or a row's content
beyond a few sample values.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field, model_validator

from scholar_ops.functest.context import SuiteContext
from scholar_ops.functest.models import Severity, TestResult, TestSuite
from scholar_ops.functest.settings import Strict, SuiteSettings

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TABLE = r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$"


# -- settings --------------------------------------------------------------------------------


class Range(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class TableChecks(Strict):
    """Expectations on one table (Great Expectations)."""

    not_null: list[str] = Field(default_factory=list)
    unique: list[str] = Field(default_factory=list)
    ranges: dict[str, Range] = Field(default_factory=dict)
    in_set: dict[str, list[str | int | float | bool]] = Field(default_factory=dict)
    row_count_min: int | None = Field(default=None, ge=0)
    severity: Severity = "high"

    @model_validator(mode="after")
    def _column_names(self) -> TableChecks:
        for col in [*self.not_null, *self.unique, *self.ranges, *self.in_set]:
            if not re.match(_IDENT, col):
                raise ValueError(f"{col!r} is not a column name")
        return self


class Reference(Strict):
    """``table.column`` must name an existing ``ref_table.ref_column`` (NULL is allowed)."""

    table: str = Field(pattern=_TABLE)
    column: str = Field(pattern=_IDENT)
    ref_table: str = Field(pattern=_TABLE)
    ref_column: str = Field(pattern=_IDENT)
    severity: Severity = "critical"


class EmbeddingDimension(Strict):
    """Every row of ``table`` records ``column`` == ``equals`` (the vectors' dimension)."""

    table: str = Field(pattern=_TABLE)
    column: str = Field(pattern=_IDENT)
    equals: int = Field(ge=1)
    severity: Severity = "high"


class PostgresChecks(Strict):
    tables: dict[str, TableChecks] = Field(default_factory=dict)
    references: list[Reference] = Field(default_factory=list)
    embedding_dimension: EmbeddingDimension | None = None
    statement_timeout_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _table_names(self) -> PostgresChecks:
        for t in self.tables:
            if not re.match(_TABLE, t):
                raise ValueError(f"{t!r} is not a table name ([schema.]table)")
        return self


class RedisChecks(Strict):
    #: key patterns (SCAN MATCH syntax) whose keys must expire
    ttl_required: list[str] = Field(default_factory=list)
    ttl_severity: Severity = "medium"
    #: used_memory must be below this many bytes
    max_memory_bytes: int | None = Field(default=None, gt=0)
    #: used_memory must be below this share of maxmemory (which must be set)
    max_memory_ratio: float | None = Field(default=None, gt=0, le=1)
    #: at most this many keys are looked at per pattern
    max_keys_scanned: int = Field(default=10_000, ge=1)


class CollectionChecks(Strict):
    dimension: int | None = Field(default=None, ge=1)
    min_count: int = Field(default=0, ge=0)


class ChromaChecks(Strict):
    collections: dict[str, CollectionChecks] = Field(default_factory=dict)


class Consistency(Strict):
    """The ids ``postgres_query`` yields (its first column), formatted with ``id_format``,
    are exactly the ids of ``chroma_collection``."""

    postgres_query: str = Field(min_length=7)
    chroma_collection: str = Field(min_length=1)
    id_format: str = "{id}"
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: an id in PostgreSQL without its vector (data lost between stores)
    missing_severity: Severity = "critical"
    #: a vector whose row is gone (a leak; search may return deleted data)
    orphan_severity: Severity = "high"
    #: check every vector of the collection against PostgreSQL
    check_orphans: bool = True

    @model_validator(mode="after")
    def _shape(self) -> Consistency:
        if not re.match(r"^\s*(select|with)\b", self.postgres_query, re.IGNORECASE):
            raise ValueError("postgres_query must be a SELECT (or WITH ... SELECT)")
        if self.id_format.count("{id}") != 1:
            raise ValueError("id_format must contain {id} exactly once")
        return self


class Settings(SuiteSettings):
    default_timeout: ClassVar[float] = 300.0

    postgres: PostgresChecks | None = None
    redis: RedisChecks | None = None
    chroma: ChromaChecks | None = None
    consistency: list[Consistency] = Field(default_factory=list)

    def needs(self) -> list[str]:
        out = []
        if self.postgres is not None or self.consistency:
            out.append("postgres")
        if self.redis is not None:
            out.append("redis")
        if self.chroma is not None or self.consistency:
            out.append("chroma")
        return out


# -- running the checks ----------------------------------------------------------------------


@dataclass
class _Check:
    """A unit of work producing the results named in ``names`` (for skipping/erroring)."""

    names: list[str]
    fn: Callable[[], list[TestResult]]
    severity: Severity = "high"
    category: str = "data"


@dataclass
class _Run:
    ctx: SuiteContext
    scrub: Callable[[str], str]
    conn: Any = None
    redis: Any = None
    chroma: Any = None
    sqlalchemy_url: str = ""
    results: list[TestResult] = field(default_factory=list)


def _result(
    name: str,
    ok: bool,
    *,
    severity: Severity,
    category: str,
    message: str | None = None,
    context: dict[str, Any] | None = None,
    duration: float = 0.0,
) -> TestResult:
    return TestResult(
        test_name=name,
        status="passed" if ok else "failed",
        duration=duration,
        error_message=None if ok else message,
        severity=severity,
        category=category,
        context={k: str(v) for k, v in (context or {}).items() if v is not None},
    )


def _run_checks(run: _Run, checks: list[_Check]) -> None:
    for check in checks:
        if run.ctx.out_of_time():
            for name in check.names:
                run.results.append(
                    TestResult(
                        name,
                        "skipped",
                        error_message="the suite ran out of time",
                        severity=check.severity,
                        category=check.category,
                    )
                )
            continue
        started = time.monotonic()
        try:
            produced = check.fn()
        except Exception as e:
            from scholar_ops.functest.stores import first_line

            message = run.scrub(f"{type(e).__name__}: {first_line(e)}")
            produced = [
                TestResult(
                    name, "error", error_message=message, severity=check.severity,
                    category=check.category,
                )
                for name in check.names
            ]  # fmt: skip
        elapsed = time.monotonic() - started
        untimed = [r for r in produced if r.duration == 0.0]
        for r in untimed:
            r.duration = round(elapsed / len(untimed), 4)
        run.results.extend(produced)


def _ident(name: str) -> Any:
    from psycopg import sql

    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def _fmt_bound(v: float | None) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))


# -- PostgreSQL ------------------------------------------------------------------------------


def _expectation_specs(checks: PostgresChecks) -> dict[str, list[Any]]:
    from scholar_ops.functest.expectations import ColumnExpectation

    tables: dict[str, list[ColumnExpectation]] = {}
    for table, tc in checks.tables.items():
        specs = tables.setdefault(table, [])
        specs += [
            ColumnExpectation(f"postgres {table}.{c} not null", "not_null", c) for c in tc.not_null
        ]
        specs += [ColumnExpectation(f"postgres {table}.{c} unique", "unique", c) for c in tc.unique]
        for c, r in tc.ranges.items():
            if r.min is not None and r.max is not None:
                label = f"between {_fmt_bound(r.min)} and {_fmt_bound(r.max)}"
            elif r.min is not None:
                label = f"at least {_fmt_bound(r.min)}"
            else:
                label = f"at most {_fmt_bound(r.max)}"
            specs.append(
                ColumnExpectation(f"postgres {table}.{c} {label}", "between", c, r.min, r.max)
            )
        for c, values in tc.in_set.items():
            specs.append(
                ColumnExpectation(
                    f"postgres {table}.{c} in set", "in_set", c, value_set=tuple(values)
                )
            )
        if tc.row_count_min is not None:
            specs.append(
                ColumnExpectation(
                    f"postgres {table} row count at least {tc.row_count_min}",
                    "rows",
                    min_value=tc.row_count_min,
                )
            )
    dim = checks.embedding_dimension
    if dim is not None:
        tables.setdefault(dim.table, []).append(
            ColumnExpectation(
                f"postgres {dim.table}.{dim.column} equals {dim.equals}",
                "between",
                dim.column,
                dim.equals,
                dim.equals,
            )
        )
    return tables


def _table_exists(conn: Any, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


def _severity_of(checks: PostgresChecks, table: str, test_name: str) -> Severity:
    dim = checks.embedding_dimension
    if dim is not None and test_name == f"postgres {dim.table}.{dim.column} equals {dim.equals}":
        return dim.severity
    tc = checks.tables.get(table)
    return tc.severity if tc is not None else "high"


def _expectations_check(run: _Run, checks: PostgresChecks) -> _Check:
    specs = _expectation_specs(checks)
    names = [s.test_name for ss in specs.values() for s in ss]

    def fn() -> list[TestResult]:
        from scholar_ops.functest.expectations import validate_tables

        out: list[TestResult] = []
        present: dict[str, list[Any]] = {}
        for table, ss in specs.items():
            if _table_exists(run.conn, table):
                present[table] = ss
                continue
            for s in ss:
                out.append(
                    _result(
                        s.test_name, False, severity="critical", category="schema",
                        message=f"table {table} does not exist", context={"table": table},
                    )
                )  # fmt: skip
        table_errors: dict[str, str] = {}

        def on_error(table: str, e: BaseException) -> None:
            from scholar_ops.functest.stores import first_line

            table_errors[table] = run.scrub(f"{type(e).__name__}: {first_line(e)}")

        outcomes = validate_tables(run.sqlalchemy_url, present, on_table_error=on_error)
        for table, ss in present.items():
            for s in ss:
                severity = _severity_of(checks, table, s.test_name)
                context: dict[str, Any] = {"table": table, "column": s.column}
                if table in table_errors:
                    out.append(
                        TestResult(
                            s.test_name, "error", error_message=table_errors[table],
                            severity=severity, category="data-quality", context=_strs(context),
                        )
                    )  # fmt: skip
                    continue
                o = outcomes.get(s.test_name)
                if o is None:
                    out.append(
                        TestResult(
                            s.test_name, "error", error_message="no result from Great Expectations",
                            severity=severity, category="data-quality", context=_strs(context),
                        )
                    )  # fmt: skip
                    continue
                if o.exception is not None:
                    out.append(
                        TestResult(
                            s.test_name, "error", error_message=run.scrub(o.exception)[:300],
                            severity=severity, category="data-quality", context=_strs(context),
                        )
                    )  # fmt: skip
                    continue
                out.append(_expectation_result(s, o, severity, context))
        return out

    return _Check(names, fn, category="data-quality")


def _strs(d: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in d.items() if v is not None}


def _expectation_result(
    spec: Any, o: Any, severity: Severity, context: dict[str, Any]
) -> TestResult:
    where = f"{spec.column}" if spec.column else "rows"
    if spec.kind == "rows":
        context["expected"] = f">= {int(spec.min_value)} rows"
        context["actual"] = f"{o.observed_value} rows"
        message = f"{o.observed_value} rows, expected at least {int(spec.min_value)}"
    else:
        n, total = o.unexpected_count, o.element_count
        context["unexpected_count"] = n
        context["rows"] = total
        if o.samples and spec.kind != "not_null":
            context["samples"] = ", ".join(o.samples)
        what = {
            "not_null": "are NULL",
            "unique": "are duplicates",
            "between": "are out of range",
            "in_set": "are not in the allowed set",
        }[spec.kind]
        if spec.kind == "between":
            context["expected"] = (
                f"{_fmt_bound(spec.min_value) or '-inf'} .. {_fmt_bound(spec.max_value) or 'inf'}"
            )
        elif spec.kind == "in_set":
            context["expected"] = ", ".join(repr(v) for v in spec.value_set)[:200]
        message = f"{n} of {total} values of {where} {what}"
        if "samples" in context:
            message += f" (e.g. {context['samples']})"
    return _result(
        spec.test_name, o.success, severity=severity, category="data-quality",
        message=message, context=context,
    )  # fmt: skip


def _reference_check(run: _Run, ref: Reference) -> _Check:
    name = f"postgres {ref.table}.{ref.column} references {ref.ref_table}.{ref.ref_column}"

    def fn() -> list[TestResult]:
        from psycopg import sql

        missing_tables = [t for t in (ref.table, ref.ref_table) if not _table_exists(run.conn, t)]
        if missing_tables:
            return [
                _result(
                    name, False, severity="critical", category="schema",
                    message=f"table {missing_tables[0]} does not exist",
                    context={"table": missing_tables[0]},
                )
            ]  # fmt: skip
        orphans = sql.SQL(
            "FROM {t} AS c WHERE c.{c} IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM {rt} AS r WHERE r.{rc} = c.{c})"
        ).format(
            t=_ident(ref.table),
            c=sql.Identifier(ref.column),
            rt=_ident(ref.ref_table),
            rc=sql.Identifier(ref.ref_column),
        )
        count_row = run.conn.execute(sql.SQL("SELECT count(*) ") + orphans).fetchone()
        count = int(count_row[0]) if count_row else 0
        context: dict[str, Any] = {
            "table": ref.table,
            "column": ref.column,
            "references": f"{ref.ref_table}.{ref.ref_column}",
            "orphan_rows": count,
        }
        message = None
        if count:
            rows = run.conn.execute(
                sql.SQL("SELECT DISTINCT c.{c} ").format(c=sql.Identifier(ref.column))
                + orphans
                + sql.SQL(" LIMIT 5")
            ).fetchall()
            samples = ", ".join(str(r[0]) for r in rows)
            context["missing_values"] = samples
            message = (
                f"{count} rows of {ref.table} reference a missing {ref.ref_table}.{ref.ref_column} "
                f"(e.g. {ref.column} = {samples})"
            )
        return [
            _result(
                name, count == 0, severity=ref.severity, category="referential-integrity",
                message=message, context=context,
            )
        ]  # fmt: skip

    return _Check([name], fn, severity=ref.severity, category="referential-integrity")


# -- Redis -----------------------------------------------------------------------------------


def _ttl_check(run: _Run, checks: RedisChecks, pattern: str) -> _Check:
    name = f"redis {pattern} keys have a TTL"

    def fn() -> list[TestResult]:
        client = run.redis
        scanned = 0
        without: list[str] = []
        without_count = 0
        truncated = False
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor=cursor, match=pattern, count=500)
            keys = keys[: checks.max_keys_scanned - scanned]
            if keys:
                pipe = client.pipeline(transaction=False)
                for k in keys:
                    pipe.ttl(k)
                ttls = pipe.execute()
                scanned += len(keys)
                for k, ttl in zip(keys, ttls, strict=True):
                    if ttl == -1:
                        without_count += 1
                        if len(without) < 5:
                            without.append(
                                k.decode(errors="replace") if isinstance(k, bytes) else str(k)
                            )
            if scanned >= checks.max_keys_scanned and cursor != 0:
                truncated = True
                break
            if cursor == 0 or run.ctx.out_of_time():
                truncated = truncated or cursor != 0
                break
        context: dict[str, Any] = {
            "pattern": pattern,
            "keys_scanned": scanned,
            "without_ttl": without_count,
        }
        if truncated:
            context["note"] = f"stopped after {scanned} keys"
        message = None
        if without_count:
            context["samples"] = ", ".join(_short_key(k) for k in without)
            message = (
                f"{without_count} of {scanned} keys matching {pattern} have no TTL "
                f"(e.g. {context['samples']})"
            )
        return [
            _result(
                name, without_count == 0, severity=checks.ttl_severity, category="cache-hygiene",
                message=message, context=context,
            )
        ]  # fmt: skip

    return _Check([name], fn, severity=checks.ttl_severity, category="cache-hygiene")


def _short_key(key: str) -> str:
    """A key as reports show it: a session key ends with a bearer token, so only the
    first characters of the key's last part are kept."""
    head, sep, tail = key.rpartition(":")
    return f"{head}{sep}{tail[:4]}…" if len(tail) > 8 else key


def _memory_check(run: _Run, checks: RedisChecks) -> _Check:
    if checks.max_memory_bytes is not None:
        name = f"redis used memory below {_human(checks.max_memory_bytes)}"
    else:
        name = f"redis used memory below {checks.max_memory_ratio:.0%} of maxmemory"

    def fn() -> list[TestResult]:
        info = run.redis.info("memory")
        used = int(info.get("used_memory", 0))
        maxmemory = int(info.get("maxmemory", 0))
        context: dict[str, Any] = {"used_memory": used, "maxmemory": maxmemory}
        if checks.max_memory_bytes is not None:
            limit = checks.max_memory_bytes
        else:
            assert checks.max_memory_ratio is not None
            if maxmemory <= 0:
                return [
                    _result(
                        name, False, severity="low", category="capacity",
                        message="maxmemory is not set: Redis may grow without limit, "
                        "and a share of it cannot be checked", context=context,
                    )
                ]  # fmt: skip
            limit = int(maxmemory * checks.max_memory_ratio)
        context["limit"] = limit
        return [
            _result(
                name, used < limit, severity="medium", category="capacity",
                message=f"Redis uses {_human(used)}, above its limit of {_human(limit)}",
                context=context,
            )
        ]  # fmt: skip

    return _Check([name], fn, severity="medium", category="capacity")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.4g} {unit}"
        n /= 1024
    return f"{n:g}"


# -- Chroma ----------------------------------------------------------------------------------


def _get_collection(client: Any, name: str) -> Any | None:
    try:
        return client.get_collection(name, embedding_function=None)
    except Exception as e:
        # chromadb raises NotFoundError (or ValueError in older versions) for a missing one
        if type(e).__name__ in ("NotFoundError", "InvalidCollectionException") or (
            "does not exist" in str(e)
        ):
            return None
        raise


def _collection_check(run: _Run, name: str, cc: CollectionChecks) -> _Check:
    exists = f"chroma {name} exists"
    count_name = f"chroma {name} count at least {cc.min_count}"
    dim_name = f"chroma {name} dimension {cc.dimension}" if cc.dimension else None
    names = [exists, count_name] + ([dim_name] if dim_name else [])

    def fn() -> list[TestResult]:
        col = _get_collection(run.chroma, name)
        if col is None:
            out = [
                _result(
                    exists, False, severity="critical", category="vector-store",
                    message=f"Chroma collection {name} does not exist", context={"collection": name},
                )
            ]  # fmt: skip
            out += [
                TestResult(
                    n, "skipped", error_message=f"collection {name} does not exist",
                    severity="high", category="vector-store",
                )
                for n in names[1:]
            ]  # fmt: skip
            return out
        out = [_result(exists, True, severity="critical", category="vector-store")]
        count = int(col.count())
        out.append(
            _result(
                count_name, count >= cc.min_count, severity="high", category="vector-store",
                message=f"{count} vectors in {name}, expected at least {cc.min_count}",
                context={"collection": name, "expected": f">= {cc.min_count}", "actual": count},
            )
        )  # fmt: skip
        if dim_name:
            got = col.get(limit=1, include=["embeddings"])
            embeddings = got.get("embeddings")
            if embeddings is None or len(embeddings) == 0:
                out.append(
                    TestResult(
                        dim_name, "skipped", error_message=f"{name} is empty: no vector to measure",
                        severity="high", category="vector-store",
                    )
                )  # fmt: skip
            else:
                dim = len(embeddings[0])
                out.append(
                    _result(
                        dim_name, dim == cc.dimension, severity="high", category="vector-store",
                        message=f"vectors of {name} have {dim} dimensions, expected {cc.dimension}",
                        context={"collection": name, "expected": cc.dimension, "actual": dim},
                    )
                )  # fmt: skip
        return out

    return _Check(names, fn, severity="critical", category="vector-store")


# -- cross-store consistency -----------------------------------------------------------------


def _consistency_checks(run: _Run, c: Consistency) -> list[_Check]:
    from scholar_ops.functest.consistency import IdMapping, missing_vectors, orphaned_vectors

    missing_name = (
        f"consistency every row of {_query_label(c)} has its vector in {c.chroma_collection}"
    )
    orphan_name = f"consistency no orphaned vectors in {c.chroma_collection}"
    mapping = IdMapping(c.id_format)
    state: dict[str, Any] = {}

    def collection() -> Any:
        if "col" not in state:
            state["col"] = _get_collection(run.chroma, c.chroma_collection)
        return state["col"]

    def context() -> dict[str, Any]:
        return {"collection": c.chroma_collection, "query": c.postgres_query[:120]}

    def missing() -> list[TestResult]:
        col = collection()
        if col is None:
            return [
                _result(
                    missing_name, False, severity=c.missing_severity, category="consistency",
                    message=f"Chroma collection {c.chroma_collection} does not exist",
                    context=context(),
                )
            ]  # fmt: skip
        found = missing_vectors(
            run.conn, col, c.postgres_query, mapping, batch=c.batch_size,
            should_stop=run.ctx.out_of_time,
        )  # fmt: skip
        ctx = {**context(), "rows_checked": found.checked, "missing_vectors": found.count}
        message = None
        if found.count:
            ctx["samples"] = ", ".join(found.ids[:5])
            message = (
                f"{found.count} of {found.checked} rows have no vector in Chroma "
                f"{c.chroma_collection}, e.g. {ctx['samples']}"
            )
        if found.stopped_early:
            ctx["note"] = f"stopped after {found.checked} rows: out of time"
        return [
            _result(
                missing_name, found.count == 0, severity=c.missing_severity,
                category="consistency", message=message, context=ctx,
            )
        ]  # fmt: skip

    def orphans() -> list[TestResult]:
        col = collection()
        if col is None:
            return [
                TestResult(
                    orphan_name, "skipped",
                    error_message=f"collection {c.chroma_collection} does not exist",
                    severity=c.orphan_severity, category="consistency",
                )
            ]  # fmt: skip
        found = orphaned_vectors(
            run.conn, col, c.postgres_query, mapping, batch=c.batch_size,
            should_stop=run.ctx.out_of_time,
        )  # fmt: skip
        ctx = {**context(), "vectors_checked": found.checked, "orphaned_vectors": found.count}
        message = None
        if found.count:
            ctx["samples"] = ", ".join(found.ids[:5])
            message = (
                f"{found.count} of {found.checked} vectors in Chroma {c.chroma_collection} "
                f"have no row in PostgreSQL, e.g. {ctx['samples']}"
            )
        if found.stopped_early:
            ctx["note"] = f"stopped after {found.checked} vectors: out of time"
        return [
            _result(
                orphan_name, found.count == 0, severity=c.orphan_severity,
                category="consistency", message=message, context=ctx,
            )
        ]  # fmt: skip

    out = [_Check([missing_name], missing, severity=c.missing_severity, category="consistency")]
    if c.check_orphans:
        out.append(
            _Check([orphan_name], orphans, severity=c.orphan_severity, category="consistency")
        )
    return out


def _query_label(c: Consistency) -> str:
    m = re.search(r"\bfrom\s+([\w.]+)", c.postgres_query, re.IGNORECASE)
    return m.group(1) if m else "the query"


# -- the suite -------------------------------------------------------------------------------


def _missing_store(name: str, what: str, needed_by: str) -> TestResult:
    return TestResult(
        f"stores.{name} is configured",
        "error",
        error_message=f"the plan checks {what} ({needed_by}) but stores.{name} is not configured",
        severity="high",
        category="configuration",
        context={"store": name},
    )


def run(ctx: SuiteContext, settings: Settings) -> TestSuite:
    from scholar_ops.functest.stores import (
        Scrubber,
        open_chroma,
        open_postgres,
        open_redis,
        sqlalchemy_url,
    )

    stores = ctx.stores
    pg_dsn = stores.postgres_dsn.get_secret_value() if stores.postgres_dsn else None
    redis_url = stores.redis_url.get_secret_value() if stores.redis_url else None
    sa_url = sqlalchemy_url(pg_dsn) if pg_dsn else ""
    store_scrub = Scrubber(pg_dsn, sa_url, redis_url)

    def scrub(text: str) -> str:
        return ctx.scrub(store_scrub(text))

    run_state = _Run(ctx=ctx, scrub=scrub, sqlalchemy_url=sa_url)
    started = time.monotonic()
    suite = TestSuite("database")
    remaining = ctx.remaining()
    timeout = max(1.0, min(ctx.request_timeout, remaining if remaining is not None else 1e9))
    errors: list[TestResult] = []
    needs = settings.needs()
    try:
        # every store first: unreachable means unavailable, before any verdict
        if "postgres" in needs:
            if stores.postgres_dsn is None:
                errors.append(
                    _missing_store("postgres", "PostgreSQL", _users(settings, "postgres"))
                )
            else:
                statement_ms = int(
                    (settings.postgres.statement_timeout_seconds if settings.postgres else 60.0)
                    * 1000
                )
                run_state.conn = open_postgres(
                    stores.postgres_dsn, timeout=timeout, statement_timeout_ms=statement_ms,
                    scrub=store_scrub,
                )  # fmt: skip
        if "redis" in needs:
            if stores.redis_url is None:
                errors.append(_missing_store("redis", "Redis", "redis"))
            else:
                run_state.redis = open_redis(stores.redis_url, timeout=timeout, scrub=store_scrub)
        if "chroma" in needs:
            if not stores.chroma:
                errors.append(_missing_store("chroma", "Chroma", _users(settings, "chroma")))
            else:
                run_state.chroma = open_chroma(stores.chroma, scrub=store_scrub)

        checks: list[_Check] = []
        if settings.postgres is not None and run_state.conn is not None:
            pg = settings.postgres
            if pg.tables or pg.embedding_dimension is not None:
                checks.append(_expectations_check(run_state, pg))
            checks += [_reference_check(run_state, r) for r in pg.references]
        if settings.redis is not None and run_state.redis is not None:
            rc = settings.redis
            checks += [_ttl_check(run_state, rc, p) for p in rc.ttl_required]
            if rc.max_memory_bytes is not None or rc.max_memory_ratio is not None:
                checks.append(_memory_check(run_state, rc))
        if settings.chroma is not None and run_state.chroma is not None:
            for name, cc in settings.chroma.collections.items():
                checks.append(_collection_check(run_state, name, cc))
        if run_state.conn is not None and run_state.chroma is not None:
            for c in settings.consistency:
                checks += _consistency_checks(run_state, c)
        run_state.results.extend(errors)
        _run_checks(run_state, checks)
    finally:
        for closer in (run_state.conn, run_state.redis):
            if closer is not None:
                with suppress(Exception):
                    closer.close()
    suite.tests = run_state.results
    if not suite.tests:
        suite.status = "skipped"
        suite.reason = "the database section configures no checks"
    return suite.finish(started, time.monotonic())


def _users(settings: Settings, store: str) -> str:
    parts = []
    if store == "postgres" and settings.postgres is not None:
        parts.append("postgres")
    if store == "chroma" and settings.chroma is not None:
        parts.append("chroma")
    if settings.consistency:
        parts.append("consistency")
    return " and ".join(parts) or store
