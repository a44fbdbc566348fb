"""``FilesTarget``: a directory tree to back up (uploaded files, configuration).

Paths, permissions, modification times, owners and symlinks are kept. ``include``
and ``exclude`` are gitignore-like patterns (see ``scholar_ops.sources.files.patterns``);
exclude wins. Files whose size and modification time match the previous snapshot
of the same target are not read again.
"""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import Field, field_validator

from blocks.base import BackupRequest, TargetBlock
from scholar_ops.sources.drill import DrillResult, drill_files
from scholar_ops.sources.files.backup import backup_files
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot


class FilesTarget(TargetBlock):
    """A directory tree on this machine (or a mounted filesystem)."""

    component: ClassVar[str] = "files"
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

    def default_name(self) -> str:
        return self.path

    def describe(self) -> str:
        return self.path

    def backup(self, repo: Repository, request: BackupRequest) -> Snapshot:
        """Unchanged files (size and mtime) are not read again."""
        return backup_files(
            repo,
            self.path,
            include=self.include,
            exclude=self.exclude,
            one_file_system=self.one_file_system,
            ignore_errors=self.ignore_errors,
            **request.engine_args(self.target_name),
        )

    def drill(self, repo: Repository, snap: Snapshot, scratch_dir: str | None) -> DrillResult:
        """Into a scratch directory under ``scratch_dir``."""
        return drill_files(repo, self.target_name, snap=snap, scratch_dir=scratch_dir)
