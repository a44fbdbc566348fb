"""Fault switches: realistic breakage injected on demand, so that every functionality
suite can be shown to catch what it exists to catch (docs/aischolar.md).

The switches live in Redis (``aischolar:faults``, see :mod:`.cache`), so they hold for
every request of every worker and survive nothing but a flush. ``PUT /api/admin/faults``
(header ``X-Admin-Token``) sets them all at once: a switch left out goes off.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

#: every switch, in the order the documentation lists them
FAULT_NAMES = ("search_500", "slow_search", "renamed_field", "missing_vectors", "broken_button")

#: how long ``slow_search`` holds each search
SLOW_SEARCH_SECONDS = 1.5

#: the frontend line ``broken_button`` removes (the search button's click handler)
SEARCH_BINDING = 'bind("search-button", search);'


class Faults(BaseModel):
    #: ``POST /api/search`` answers 500
    search_500: bool = False
    #: search sleeps :data:`SLOW_SEARCH_SECONDS` before answering
    slow_search: bool = False
    #: search results carry ``similarity`` instead of ``score`` (a contract break)
    renamed_field: bool = False
    #: uploads write chunks to PostgreSQL but not their vectors to Chroma
    missing_vectors: bool = False
    #: the frontend's search button does nothing (its click handler is not attached)
    broken_button: bool = False


def rename_score(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``renamed_field``: each result's ``score`` renamed ``similarity``."""
    out = []
    for r in results:
        r = dict(r)
        r["similarity"] = r.pop("score")
        out.append(r)
    return out


def unbind_search_button(js: str) -> str:
    """``broken_button``: the frontend script without the search button's handler."""
    if SEARCH_BINDING not in js:
        raise RuntimeError("the frontend no longer binds the search button as expected")
    return js.replace(SEARCH_BINDING, "/* search button left unbound */")
