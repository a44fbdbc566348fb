"""The fault switches' pure parts: the list, the renamed field, the unbound button."""

from __future__ import annotations

import pytest

from scholar_ops.aischolar.app import STATIC
from scholar_ops.aischolar.faults import (
    FAULT_NAMES,
    SEARCH_BINDING,
    Faults,
    rename_score,
    unbind_search_button,
)


def test_every_switch_is_a_field_and_off_by_default():
    assert tuple(Faults.model_fields) == FAULT_NAMES
    assert not any(Faults().model_dump().values())


def test_rename_score_renames_only_that_field():
    hits = [{"chunk_id": 1, "document_id": 2, "title": "t", "text": "x", "score": 0.5}]
    assert rename_score(hits) == [
        {"chunk_id": 1, "document_id": 2, "title": "t", "text": "x", "similarity": 0.5}
    ]
    assert "score" in hits[0]  # the input is left alone


def test_the_shipped_frontend_binds_the_search_button_and_the_fault_unbinds_it():
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    assert js.count(SEARCH_BINDING) == 1
    broken = unbind_search_button(js)
    assert SEARCH_BINDING not in broken
    assert 'bind("ask-button", ask);' in broken  # only the search button breaks
    with pytest.raises(RuntimeError):
        unbind_search_button("nothing to unbind")
