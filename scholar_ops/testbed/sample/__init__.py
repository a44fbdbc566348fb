"""Sample data for tests and demos: the AI Scholar database (`aischolar`), a
kitchen-sink PostgreSQL schema (`kitchen_sink.sql`, see `KITCHEN_SINK_SQL`) and a
database fingerprint to prove a restored database equals its source (`fingerprint`)."""

from __future__ import annotations

from pathlib import Path

from scholar_ops.testbed.sample.aischolar import (
    apply_daily_churn,
    create_schema,
    load_sample,
    row_counts,
    scale_for_bytes,
)
from scholar_ops.testbed.sample.fingerprint import DatabaseFingerprint, database_fingerprint

#: a PostgreSQL 15 script exercising many kinds of objects (load with psql -v ON_ERROR_STOP=1 -f)
KITCHEN_SINK_SQL = Path(__file__).with_name("kitchen_sink.sql")

__all__ = [
    "KITCHEN_SINK_SQL",
    "DatabaseFingerprint",
    "apply_daily_churn",
    "create_schema",
    "database_fingerprint",
    "load_sample",
    "row_counts",
    "scale_for_bytes",
]
