"""kill -9 in the middle of a backup: no snapshot appears, and the next run reuses the uploads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream
from scholar_ops.vault.storage import LocalStorage, RetryingStorage, S3Storage
from scholar_ops.vault.storage.memory import MemoryStorage

MB = 1 << 20
SIZE = 160 * MB
ROOT = Path(__file__).resolve().parents[3]


def _spec(storage, master) -> dict:
    inner = storage.inner if isinstance(storage, RetryingStorage) else storage
    if isinstance(inner, LocalStorage):
        spec = {"kind": "local", "root": str(inner.root)}
    else:
        assert isinstance(inner, S3Storage)
        spec = {
            "kind": "s3",
            "endpoint": inner.client.meta.endpoint_url,
            "bucket": inner.bucket,
            "prefix": inner.prefix,
        }
    return {**spec, "master": master.secret.decode(), "size": SIZE, "seed": 41}


def test_kill_9_mid_backup_leaves_no_snapshot_and_next_run_reuses_uploads(repo, master):
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("crash_backup.py")),
            json.dumps(_spec(repo.storage, master)),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(repo.storage.list("data/"))) < 3:
            assert child.poll() is None, "the backup ended before it could be killed"
            assert time.monotonic() < deadline, "no packs were uploaded"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert repo.snapshot_ids() == [], "a killed backup must not leave a visible snapshot"
    leftover = sum(o.size for o in repo.storage.list("data/"))
    assert leftover > 0

    # The killed process's lock stays behind, but a dead process on this host holds
    # nothing: the re-run needs no unlock, and adopts the uploaded packs.
    (dead,) = repo.locks().locks
    assert dead.pid == child.pid and dead.holder_gone()
    snap = backup_stream(repo, GeneratedStream(SIZE, seed=41), component="c", target="t")
    assert snap.stats["packs_reused"] >= 3
    cold = backup_stream(
        Repository.init(MemoryStorage(), master),
        GeneratedStream(SIZE, seed=41),
        component="c",
        target="t",
    )
    assert snap.stats["bytes_stored"] < cold.stats["bytes_stored"] - leftover * 0.9
    stored_total = sum(o.size for o in repo.storage.list("data/"))
    assert snap.stats["bytes_stored"] + leftover <= stored_total * 1.05
    sink = CompareSink(GeneratedStream(SIZE, seed=41))
    restore_stream(repo, snap, sink)
    assert sink.identical
    assert check(repo).ok
    # Prune keeps every adopted pack: they are part of the snapshot now.
    assert forget_and_prune(repo).packs_deleted == 0
