"""``StrictBlock``: a Prefect Block that rejects fields it does not declare.

Prefect's ``Block`` is a pydantic model with ``extra="allow"``, so a misspelled
keyword (``PostgresTarget(hots=...)``) is kept as a silent extra attribute and
the field it was meant for keeps its default. ``StrictBlock`` turns that into a
validation error that names the unknown field, suggests the closest valid one
and lists them all.

Keys that Prefect itself puts into a block's data are let through:

- ``block_type_slug``: added by ``Block.model_dump`` (also for nested blocks) and
  checked by ``Block.validate_block_type_slug``, which relies on it to pick the
  right class in a union of blocks; it is left in place for that check.
- ``_block_document_id``, ``_block_document_name``, ``_is_anonymous``: metadata
  that ``Block``'s serializer adds to dumps of saved blocks. ``Block.model_validate``
  drops them at the top level only; here they are dropped wherever the block is
  validated (keyword construction, nested blocks). Prefect sets the matching
  private attributes itself after loading.

The error is raised as a ``ValidationError`` whose location is the unknown key,
so pydantic reports it as ``<field>: <message>`` (nested: ``parent.<field>``).

Loading is strict too: a saved document holding a field the class no longer
declares (removed or renamed in code) fails to load instead of silently running
on a default. Prefect's escape hatch ``Block.load(name, validate=False)`` still
works: such fields are then dropped with a warning (Prefect's own fallback would
crash on them: it passes the failing keys to ``model_construct`` twice).

Error messages never show input values (``hide_input_in_errors``): a block's
input holds its secrets in plain text (a ``password=`` next to a conflicting
field, a misspelled ``pasword=``), and a model-level error would print it all.
The ``input`` of an unknown-field error is the key, never its value.
"""

from __future__ import annotations

import difflib
import warnings
from abc import ABC
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from prefect.blocks.core import Block
from pydantic import ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import BlockDocument

#: Keys Prefect adds to a block's data; never user fields.
PREFECT_METADATA_KEYS = frozenset({"_block_document_id", "_block_document_name", "_is_anonymous"})
#: Keys Prefect adds and validates itself (see ``Block.validate_block_type_slug``).
PREFECT_PASSTHROUGH_KEYS = frozenset({"block_type_slug"})

UNKNOWN_FIELD_ERROR = "unknown_field"


class StrictBlock(Block, ABC):
    """Base for scholar-ops blocks: unknown fields are an error, not a silent extra.

    Abstract (``ABC`` among its bases), so Prefect neither registers nor dispatches
    to it; subclasses are ordinary block types.
    """

    # Merged into Block's config (extra="allow" stays: unknown keys are caught below,
    # with a better message than pydantic's "Extra inputs are not permitted").
    # Inputs are left out of error messages: a block's input holds its secrets in
    # plain text, and model-level errors would print the whole input dict.
    model_config = ConfigDict(hide_input_in_errors=True)

    _strict_exempt_keys: ClassVar[frozenset[str]] = PREFECT_PASSTHROUGH_KEYS

    @classmethod
    def load_sync(cls, name: str, validate: bool = True) -> Self:
        """``cls.load(name)``, always synchronous and typed as ``Self``.

        ``Block.load`` dispatches on the calling context: from inside a running
        event loop (an async flow, even through sync code) it returns a coroutine,
        and mypy types its result as ``Self | Coroutine``.
        """
        return cast(Self, cls.load(name, validate=validate, _sync=True))  # type: ignore[call-arg]

    @classmethod
    def valid_field_names(cls) -> list[str]:
        """The keyword names this block accepts, in declaration order (aliases included)."""
        names: list[str] = []
        for name, info in cls.model_fields.items():
            names.append(name)
            for alias in (info.alias, info.validation_alias):
                if isinstance(alias, str) and alias not in names:
                    names.append(alias)
        return names

    @classmethod
    def unknown_fields(cls, data: dict[str, Any]) -> list[str]:
        """Keys of ``data`` that are neither fields of this block nor Prefect's own keys."""
        valid = set(cls.valid_field_names()) | cls._strict_exempt_keys | PREFECT_METADATA_KEYS
        return [str(k) for k in data if k not in valid]

    @classmethod
    def unknown_field_message(cls, key: str) -> str:
        valid = cls.valid_field_names()
        message = f"{cls.__name__} got unknown field {key!r}"
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if not close:
            # Case and separators: `sslMode`, `connect-timeout`.
            normalized = {v.lower().replace("_", ""): v for v in valid}
            hit = normalized.get(key.lower().replace("_", "").replace("-", ""))
            close = [hit] if hit else []
        if close:
            message += f" (did you mean {close[0]!r}?)"
        return f"{message}. Valid fields: {', '.join(valid)}"

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values  # an instance, or something pydantic will reject itself
        if any(k in PREFECT_METADATA_KEYS for k in values):
            values = {k: v for k, v in values.items() if k not in PREFECT_METADATA_KEYS}
        unknown = cls.unknown_fields(values)
        if not unknown:
            return values
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    UNKNOWN_FIELD_ERROR,
                    "{message}",
                    {"message": cls.unknown_field_message(key)},
                ),
                loc=(key,),
                input=key,  # the key, never the value (it may be a secret)
            )
            for key in unknown
        ]
        raise ValidationError.from_exception_data(cls.__name__, errors)

    @classmethod
    def _load_from_block_document(
        cls, block_document: BlockDocument, validate: bool = True
    ) -> Self:
        # Block.load / aload / load_from_ref all end here. See the module docstring.
        if not validate and isinstance(block_document.data, dict):
            unknown = cls.unknown_fields(block_document.data)
            if unknown:
                warnings.warn(
                    f"{cls.__name__}: ignoring field(s) {', '.join(map(repr, unknown))} of "
                    f"block document {block_document.name!r}, which {cls.__name__} does not "
                    "declare (any more); save the block again to drop them",
                    stacklevel=2,
                )
                data = {k: v for k, v in block_document.data.items() if k not in unknown}
                block_document = block_document.model_copy(update={"data": data})
        return super()._load_from_block_document(block_document, validate=validate)
