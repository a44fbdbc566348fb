"""Great Expectations 1.x on PostgreSQL tables, for the database suite.

One ephemeral data context per run, one table asset per table, one expectation suite
per table validated on the whole table; each expectation carries the name of the test
it becomes in its ``meta``. Great Expectations is imported here, inside
:func:`validate_tables`, never at import time (it takes seconds), and is used under a
module-wide lock: several ephemeral contexts used at once in one process are known
to fail.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Great Expectations is not safe with parallel ephemeral contexts in one process
_GX_LOCK = threading.Lock()


@dataclass(frozen=True)
class ColumnExpectation:
    """One expectation to build: ``kind`` is not_null, unique, between, in_set or rows."""

    test_name: str
    kind: str
    column: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple[Any, ...] = ()


@dataclass
class ExpectationOutcome:
    test_name: str
    success: bool
    #: the expectation could not be evaluated (missing column, SQL error): its text
    exception: str | None = None
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    #: a few distinct unexpected values, as short strings
    samples: list[str] = field(default_factory=list)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expectation(gx: Any, spec: ColumnExpectation) -> Any:
    meta = {"test_name": spec.test_name}
    e = gx.expectations
    if spec.kind == "not_null":
        return e.ExpectColumnValuesToNotBeNull(column=spec.column, meta=meta)
    if spec.kind == "unique":
        return e.ExpectColumnValuesToBeUnique(column=spec.column, meta=meta)
    if spec.kind == "between":
        return e.ExpectColumnValuesToBeBetween(
            column=spec.column, min_value=spec.min_value, max_value=spec.max_value, meta=meta
        )
    if spec.kind == "in_set":
        return e.ExpectColumnValuesToBeInSet(
            column=spec.column, value_set=list(spec.value_set), meta=meta
        )
    if spec.kind == "rows":
        return e.ExpectTableRowCountToBeBetween(min_value=spec.min_value, meta=meta)
    raise ValueError(f"unknown expectation kind {spec.kind!r}")


def _outcome(test_name: str, raw: Any) -> ExpectationOutcome:
    info = raw.exception_info or {}
    # a failed metric is reported as {metric id: {exception_message, ...}}
    if "raised_exception" not in info and info:
        info = next(iter(info.values()), {})
    result = dict(raw.result or {})
    out = ExpectationOutcome(test_name=test_name, success=bool(raw.success))
    if info.get("raised_exception"):
        out.success = False
        out.exception = str(info.get("exception_message") or "the expectation raised")
        return out
    out.element_count = result.get("element_count")
    out.unexpected_count = result.get("unexpected_count")
    out.unexpected_percent = result.get("unexpected_percent")
    out.observed_value = result.get("observed_value")
    counts = result.get("partial_unexpected_counts")
    if counts:
        out.samples = [
            f"{_short(c.get('value'))} x{c.get('count')}"
            if c.get("count", 1) > 1
            else _short(c.get("value"))
            for c in counts[:5]
        ]
    else:
        out.samples = [_short(v) for v in (result.get("partial_unexpected_list") or [])[:5]]
    return out


def _quiet_context(gx: Any) -> Any:
    # its INFO lines ("Created temporary directory ... for ephemeral docs site") are not
    # the operator's
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
    except Exception:  # only cosmetics: the progress bars on stderr
        pass
    return context


def validate_tables(
    connection_string: str,
    tables: dict[str, list[ColumnExpectation]],
    *,
    on_table_error: Callable[[str, BaseException], None] | None = None,
) -> dict[str, ExpectationOutcome]:
    """Validate ``tables`` ({"[schema.]table": expectations}) on the PostgreSQL database at
    ``connection_string`` (an SQLAlchemy URL, ``postgresql+psycopg://...``). Returns the
    outcome of every expectation by test name. A table whose validation raises is
    reported to ``on_table_error`` (or raises when none is given)."""
    with _GX_LOCK:
        import great_expectations as gx

        context = _quiet_context(gx)
        source = context.data_sources.add_postgres(
            "scholar_ops_functest", connection_string=connection_string
        )
        outcomes: dict[str, ExpectationOutcome] = {}
        for index, (table, specs) in enumerate(tables.items()):
            if not specs:
                continue
            try:
                schema, _, name = table.rpartition(".")
                extra = {"schema_name": schema} if schema else {}
                asset = source.add_table_asset(f"t{index}_{name}", table_name=name, **extra)
                batch = asset.add_batch_definition_whole_table("whole table").get_batch()
                suite = gx.ExpectationSuite(name=f"scholar_ops {table}")
                for spec in specs:
                    suite.add_expectation(_expectation(gx, spec))
                validation = batch.validate(suite, result_format="SUMMARY")
            except Exception as e:
                if on_table_error is None:
                    raise
                on_table_error(table, e)
                continue
            for raw in validation.results:
                meta = raw.expectation_config.meta or {}
                name_of_test = meta.get("test_name")
                if name_of_test:
                    outcomes[str(name_of_test)] = _outcome(str(name_of_test), raw)
        return outcomes
