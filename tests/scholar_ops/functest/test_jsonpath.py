"""The small JSON path of the plans' conditions."""

from __future__ import annotations

import re

import pytest

from scholar_ops.functest.jsonpath import JsonPathError, extract

DOC = {"results": [{"score": 0.5, "tags": ["a"]}, {"score": 0.25, "tags": []}], "n": 2}


def test_fields_items_spreads_and_length():
    assert extract(DOC, "$") == DOC
    assert extract(DOC, "$.results[1].score") == 0.25
    assert extract(DOC, "$.results[*].score") == [0.5, 0.25]
    assert extract(DOC, "$.results.length()") == 2
    assert extract(DOC["results"], "$.length()") == 2
    assert extract(DOC, "$.results[*].tags.length()") == [1, 0]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("results", "starts with $"),
        ("$.results[5]", "no item [5]"),
        ("$.missing", "no field 'missing'"),
        ("$.n[*]", "[*] of a int"),
        ("$.n.length()", "length() of a int"),
        ("$.results[x]", "cannot read"),
    ],
)
def test_errors_name_the_part(path: str, message: str):
    with pytest.raises(JsonPathError, match=re.escape(message)):
        extract(DOC, path)
