"""``FilesTarget``: a directory tree to back up (uploaded files, configuration).

Paths, permissions, modification times, owners and symlinks are kept. ``include``
and ``exclude`` are gitignore-like patterns (see ``scholar_ops.sources.files.patterns``);
exclude wins. Files whose size and modification time match the previous snapshot
of the same target are not read again.
"""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from blocks.base import StrictBlock
from scholar_ops.vault.errors import ConfigError


class FilesTarget(StrictBlock):
    """A directory tree on this machine (or a mounted filesystem)."""

    _block_type_name = "scholar-ops files target"
    _description = (
        "A directory tree (uploads, configuration) that scholar-ops backs up with paths, "
        "permissions, modification times and symlinks, and restores into a directory."
    )

    path: str = Field(description="Absolute path of the directory to back up.")
    include: list[str] = Field(
        default_factory=list,
        description="Only back up paths matching these patterns (empty: everything).",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Never back up paths matching these patterns."
    )
    one_file_system: bool = Field(
        default=True, description="Do not descend into other mounted filesystems."
    )
    ignore_errors: bool = Field(
        default=False,
        description="Skip unreadable files with a warning instead of failing the backup.",
    )
    label: str | None = Field(
        default=None,
        max_length=128,
        description="Short, non-secret name for snapshots, artifacts and metrics (default: the block's name).",
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("path must not be empty")
        if not os.path.isabs(value):
            raise ValueError(
                f"path must be absolute (a flow may run in another directory), not {value!r}"
            )
        return os.path.normpath(value)

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        from scholar_ops.sources.files.patterns import compile_pattern

        patterns = [v.strip() for v in value if v.strip()]
        for p in patterns:
            try:
                compile_pattern(p)  # a bad pattern fails here, not halfway through a backup
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return patterns

    @field_validator("label")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    @property
    def target_name(self) -> str:
        """The label, else the block's name (else, unsaved, the path)."""
        return self.label or self._block_document_name or self.path

    @property
    def earlier_target_names(self) -> list[str]:
        """The name unlabelled targets' snapshots carried before (the path)."""
        return [] if self.label or self.path == self.target_name else [self.path]
