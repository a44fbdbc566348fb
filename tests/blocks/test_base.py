"""StrictBlock: unknown fields are errors; Prefect's own keys and saved blocks still load."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from pydantic import SecretStr, ValidationError

from blocks.base import StrictBlock


class Probe(StrictBlock):
    _block_type_name = "scholar-ops test probe"

    host: str = "127.0.0.1"
    port: int = 5432
    token: SecretStr | None = None


class Outer(StrictBlock):
    _block_type_name = "scholar-ops test outer"

    name: str
    probe: Probe


def probe(**kwargs: Any) -> Probe:
    """Probe(**kwargs) with deliberately wrong keywords, past the type checker."""
    return Probe(**kwargs)


def _only_error(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, Any]:
    errors = exc.value.errors()
    assert len(errors) == 1, errors
    return dict(errors[0])


def test_misspelled_field_is_rejected_with_a_suggestion():
    with pytest.raises(ValidationError) as exc:
        probe(hots="db.example")
    err = _only_error(exc)
    assert err["type"] == "unknown_field"
    assert err["loc"] == ("hots",)
    assert err["msg"] == (
        "Probe got unknown field 'hots' (did you mean 'host'?). Valid fields: host, port, token"
    )
    assert "hots" in str(exc.value)


def test_unknown_field_without_a_close_match_lists_the_valid_ones():
    with pytest.raises(ValidationError) as exc:
        probe(colour="blue")
    err = _only_error(exc)
    assert err["msg"] == "Probe got unknown field 'colour'. Valid fields: host, port, token"


def test_case_only_difference_is_suggested():
    with pytest.raises(ValidationError, match=r"'PORT' \(did you mean 'port'\?\)"):
        probe(PORT=1)


def test_every_unknown_field_is_reported():
    with pytest.raises(ValidationError) as exc:
        probe(hots="x", prot=1)
    assert [e["loc"] for e in exc.value.errors()] == [("hots",), ("prot",)]


def test_model_validate_and_nested_dicts_are_strict_too():
    with pytest.raises(ValidationError, match="unknown field 'hots'"):
        Probe.model_validate({"hots": "x"})
    with pytest.raises(ValidationError) as exc:
        Outer.model_validate({"name": "o", "probe": {"hots": "x"}})
    err = _only_error(exc)
    assert err["loc"] == ("probe", "hots")
    assert "did you mean 'host'?" in err["msg"]


def test_errors_never_show_input_values():
    # A misspelled secret field, and a valid one next to a model-level error.
    with pytest.raises(ValidationError) as exc:
        probe(tokn="hunter2-secret", port="not-a-port", token="hunter2-other")
    assert "hunter2" not in str(exc.value)
    assert all("hunter2" not in repr(e["input"]) for e in exc.value.errors() if "tokn" in e["loc"])


def test_prefect_metadata_keys_are_accepted():
    p = probe(
        host="h",
        block_type_slug="scholar-ops-test-probe",
        _block_document_id=str(uuid.uuid4()),
        _block_document_name="n",
        _is_anonymous=False,
    )
    assert p.host == "h"
    assert "_block_document_id" not in (p.__pydantic_extra__ or {})


def test_a_wrong_block_type_slug_is_still_prefects_error():
    with pytest.raises(ValidationError, match="Invalid block_type_slug"):
        probe(block_type_slug="s3-bucket")


def test_dumps_validate_back():
    outer = Outer(name="o", probe=Probe(host="h", token=SecretStr("t")))
    dumped = outer.model_dump()
    assert dumped["probe"]["block_type_slug"] == "scholar-ops-test-probe"
    again = Outer.model_validate(dumped)
    assert again.probe.host == "h"
    assert again.probe.token is not None and again.probe.token.get_secret_value() == "t"
    assert Outer(**outer.model_dump()) == again


def test_strict_block_itself_is_abstract_for_prefect():
    # Not registered as a block type of its own, so nothing dispatches to it.
    with pytest.raises(Exception, match="interface"):
        StrictBlock.register_type_and_schema()


def test_saved_blocks_load_back(prefect_harness):
    name = f"probe-{uuid.uuid4().hex[:8]}"
    Probe(host="db.internal", port=6543, token=SecretStr("s3cret")).save(name)

    loaded = Probe.load_sync(name)
    assert (loaded.host, loaded.port) == ("db.internal", 6543)
    assert loaded.token is not None and loaded.token.get_secret_value() == "s3cret"
    assert loaded._block_document_name == name
    assert loaded._block_document_id is not None

    # By slug through the Block base class, and a saved block's dump validates back.
    generic = Block.load(f"scholar-ops-test-probe/{name}", _sync=True)  # type: ignore[call-arg]
    assert isinstance(generic, Probe) and generic.port == 6543
    dumped = loaded.model_dump()
    assert dumped["_block_document_name"] == name
    assert Probe(**dumped).host == "db.internal"

    # Saving again (overwrite) after editing keeps working.
    loaded.port = 7000
    loaded.save(name, overwrite=True)
    assert Probe.load_sync(name).port == 7000


def test_saved_nested_strict_blocks_load_back(prefect_harness):
    probe_name = f"probe-{uuid.uuid4().hex[:8]}"
    probe = Probe(host="inner")
    probe.save(probe_name)  # saved on its own: referenced, not inlined
    outer_name = f"outer-{uuid.uuid4().hex[:8]}"
    Outer(name="o", probe=probe).save(outer_name)
    inline_name = f"outer-{uuid.uuid4().hex[:8]}"
    Outer(name="i", probe=Probe(host="inline")).save(inline_name)

    loaded = Outer.load_sync(outer_name)
    assert loaded.probe.host == "inner"
    assert loaded.probe._block_document_name == probe_name
    assert Outer.load_sync(inline_name).probe.host == "inline"


def test_a_document_with_a_removed_field_fails_loudly_but_validate_false_still_loads(
    prefect_harness,
):
    """A document holding a field the class does not declare (removed or renamed
    in code since it was saved): strict on load too, and Prefect's `validate=False`
    escape hatch drops the field with a warning."""
    name = f"probe-{uuid.uuid4().hex[:8]}"
    Probe(host="h", port=6000).save(name)
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(name, block_type_slug="scholar-ops-test-probe")
        client.update_block_document(
            doc.id, BlockDocumentUpdate(data={"old_field": 1}, merge_existing_data=True)
        )

    with pytest.raises(RuntimeError, match="failed validation") as exc:
        Probe.load_sync(name)
    assert "unknown field 'old_field'" in str(exc.value.__cause__)

    with pytest.warns(UserWarning, match="ignoring field\\(s\\) 'old_field'"):
        loaded = Probe.load_sync(name, validate=False)
    assert (loaded.host, loaded.port) == ("h", 6000)
    assert "old_field" not in (loaded.__pydantic_extra__ or {})
