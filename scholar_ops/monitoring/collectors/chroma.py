"""A Chroma store (embedded directory or server): collections and records per collection.

Counting touches no embedding function (no model is loaded, nothing is downloaded).
An embedded directory is opened in this process: see scholar_ops.sources.chroma.conninfo about
directories another process holds open.
"""

from __future__ import annotations

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, gauge
from scholar_ops.sources.chroma.conninfo import ChromaSource


def collect_chroma(source: ChromaSource, labels: dict[str, str]) -> list[Sample]:
    """Samples of one store; ``labels`` (component, target) go on every sample.

    The HTTP client has no request timeout of its own: the collector runner's
    per-collector timeout bounds it. Raises when the store cannot be opened.
    """
    client = source.client()
    collections = client.list_collections()
    samples = [
        gauge(names.DATABASE_UP, 1, labels),
        gauge(names.CHROMA_COLLECTIONS, len(collections), labels),
    ]
    for col in sorted(collections, key=lambda c: c.name):
        samples.append(gauge(names.CHROMA_RECORDS, col.count(), {**labels, "collection": col.name}))
    return samples
