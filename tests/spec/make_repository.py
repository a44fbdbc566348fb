"""Writes tests/spec/repository/ and expected.json (run once; the files are committed).

    uv run python -m tests.spec.make_repository

A small format-2 repository: a full and an incremental snapshot of a stream, a
files snapshot (a file, a directory, a symlink, an empty file), and a prune that
forgot a third snapshot (so a tombstone object exists). expected.json records
what a reader must find: every snapshot's entries with their sha256 and size.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from pathlib import Path

from scholar_ops.vault.archiver import BackupWriter, backup_stream
from scholar_ops.vault.chunker import ChunkerParams
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Entry
from scholar_ops.vault.storage import LocalStorage

HERE = Path(__file__).resolve().parent
MASTER = "spec-reader-fixture-master-key-0123456789"


def main() -> None:
    out = HERE / "repository"
    shutil.rmtree(out, ignore_errors=True)
    repo = Repository.init(
        LocalStorage(out),
        MasterKey.from_string(MASTER),
        chunker=ChunkerParams(avg_size=4096, min_size=1024, max_size=16384),
        pack_size=32 << 10,
    )
    rng = random.Random(2026)
    text = "".join(f"{i}\tpaper {rng.random():.6f}\tabstract {'x' * rng.randint(10, 80)}\n"
                   for i in range(1500)).encode()  # fmt: skip
    full = backup_stream(repo, io.BytesIO(text), component="postgres", target="spec-pg",
                         name="tables/public.papers", backup_type="full")  # fmt: skip
    changed = text[:30000] + b"999\tinserted row\n" + text[30000:]
    incr = backup_stream(repo, io.BytesIO(changed), component="postgres", target="spec-pg",
                         name="tables/public.papers")  # fmt: skip
    gone = backup_stream(repo, io.BytesIO(b"forgotten" * 500), component="redis",
                         target="spec-redis", name="dump.rdb")  # fmt: skip
    with BackupWriter(repo, component="files", target="spec-files", backup_type="full") as w:
        w.add_entry(Entry(name="docs", kind="dir", mode=0o755))
        w.add_stream("docs/a.txt", io.BytesIO(b"hello spec\n" * 300), kind="file", mode=0o644)
        w.add_entry(Entry(name="docs/empty", kind="file", mode=0o600,
                          sha256=hashlib.sha256(b"").hexdigest()))  # fmt: skip
        w.add_entry(Entry(name="docs/link", kind="symlink", target="a.txt"))
        files = w.commit(group="g")
    forget_and_prune(repo, [gone.backup_id])
    expected = {
        "master_key": MASTER,
        "forgotten": [gone.backup_id],
        "snapshots": {
            s.backup_id: {
                "component": s.component,
                "target": s.target,
                "backup_type": s.backup_type,
                "checksum": s.checksum,
                "entries": {
                    e.name: {"kind": e.kind, "size": e.size, "sha256": e.sha256} for e in s.entries
                },
            }
            for s in (full, incr, files)
        },
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
