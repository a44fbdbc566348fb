"""What this host has seen of a repository, to notice snapshots that vanish.

Everything inside the repository can be rolled back together by someone with
write access to it (an older copy put back whole). What the operator's own
machine remembers cannot: ``check`` records the snapshot ids it saw, per
repository, in a small file outside the repository, and reports a snapshot
seen before that is gone without a prune having recorded it
(``forgotten/``). The file holds ids and times, no secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

STATE_DIR_ENV = "SCHOLAR_OPS_STATE_DIR"


def default_state_dir() -> Path:
    """$SCHOLAR_OPS_STATE_DIR, else $XDG_STATE_HOME/scholar-ops, else ~/.local/state/scholar-ops."""
    if env := os.environ.get(STATE_DIR_ENV):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scholar-ops"


@dataclass
class Vanished:
    backup_id: str
    first_seen: str


@dataclass
class KnownSnapshots:
    """The snapshot ids seen in one repository (by its repo id), with when first seen."""

    path: Path
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path, repo_id: str) -> KnownSnapshots:
        path = state_dir / f"known-snapshots-{repo_id[:32]}.json"
        try:
            doc = json.loads(path.read_text())
            seen = {str(k): str(v) for k, v in doc.get("seen", {}).items()}
        except FileNotFoundError:
            seen = {}
        except (OSError, ValueError, AttributeError):
            seen = {}  # unreadable: start again (it only ever adds findings)
        return cls(path, seen)

    def compare(self, present: set[str], forgotten: set[str]) -> list[Vanished]:
        """Snapshots seen before, now gone, with no tombstone: oldest first."""
        gone = [
            Vanished(sid, when)
            for sid, when in self.seen.items()
            if sid not in present and sid not in forgotten
        ]
        return sorted(gone, key=lambda v: v.first_seen)

    def update(self, present: set[str], forgotten: set[str], *, accept_missing: bool) -> None:
        """Remember ``present``; forget tombstoned ids (and vanished ones when accepted)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for sid in present:
            self.seen.setdefault(sid, now)
        for sid in list(self.seen):
            if sid in forgotten or (accept_missing and sid not in present):
                del self.seen[sid]
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"seen": self.seen}, f, indent=0, sort_keys=True)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
