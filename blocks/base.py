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
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from scholar_ops.vault.archiver import Progress
from scholar_ops.vault.snapshot import BackupType

if TYPE_CHECKING:
    from prefect.client.schemas.objects import BlockDocument

    from scholar_ops.sources.drill import DrillResult
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.snapshot import Snapshot

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


# -- target blocks --------------------------------------------------------------------------


def blank_to_none(value: str | None) -> str | None:
    """The UI submits an emptied text box as "": that means "not set"."""
    if value is None or not value.strip():
        return None
    return value.strip()


def empty_secret_to_none(value: SecretStr | None) -> SecretStr | None:
    if value is not None and value.get_secret_value() == "":
        return None
    return value


def check_one_secret_source(
    inline: SecretStr | None, secret_block: str | None, what: str, field: str
) -> None:
    """A secret is held by the block (``field``) or named (``<field>_secret``), not both."""
    if inline is not None and secret_block is not None:
        raise ValueError(
            f"set either {field} or {field}_secret (the name of a Secret block holding the "
            f"{what}), not both"
        )


@dataclass(frozen=True)
class BackupRequest:
    """What a backup run asks of one target (the target's own settings are in its block)."""

    backup_type: BackupType = "incremental"
    retention_days: float | None = None
    group: str | None = None
    progress: Callable[[Progress], None] | None = None

    def engine_args(self, target: str) -> dict[str, Any]:
        """The keyword arguments every engine backup function takes (``target`` and these)."""
        return {
            "target": target,
            "backup_type": self.backup_type,
            "retention_days": self.retention_days,
            "group": self.group,
            "progress": self.progress,
        }


class TargetBlock(StrictBlock, ABC):
    """A component's target: where its data is, what it is called, and the glue that hands
    its settings to the engine's backup and restore drill of it.

    ``target_name`` (the label, else the block's name) names its snapshots and metrics.
    """

    component: ClassVar[str]
    label: str | None = Field(
        default=None,
        max_length=128,
        description="Short, non-secret name for snapshots, artifacts and metrics "
        "(default: the block's name).",
    )

    @field_validator("label")
    @classmethod
    def _blank_label_is_none(cls, value: str | None) -> str | None:
        return blank_to_none(value)

    @property
    def target_name(self) -> str:
        """The label, else the block's name (else, unsaved, ``default_name()``)."""
        return self.label or self._block_document_name or self.default_name()

    @property
    def earlier_target_names(self) -> list[str]:
        """The name an unlabelled target's snapshots carried before they were named after
        the block: ``latest`` falls back to it until the target's first new backup."""
        old = self.default_name()
        return [] if self.label or old == self.target_name else [old]

    def resolve_secret(
        self, inline: SecretStr | None, secret_block: str | None, what: str
    ) -> str | None:
        """A password or token: the block's own, else the raw value of its Secret block."""
        if inline is not None:
            return inline.get_secret_value()
        if secret_block is None:
            return None
        from blocks.secrets import read_string_secret

        return read_string_secret(secret_block, f"{self.title()} {self.target_name!r}", what)

    @classmethod
    def title(cls) -> str:
        return (cls._block_type_name or cls.__name__).removeprefix("scholar-ops ")

    @abstractmethod
    def default_name(self) -> str:
        """The name of an unsaved block (and the earlier default name of unlabelled ones)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data is, for logs (never a secret)."""

    def estimate_bytes(self) -> int:
        """About how many bytes a backup reads (0: unknown); for progress only."""
        return 0

    @abstractmethod
    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        """Back the target up into ``repo`` as one snapshot."""

    @abstractmethod
    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """Restore ``snap`` into a scratch place, verify it, remove the scratch place."""
