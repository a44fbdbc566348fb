"""`make demo`: the store end to end on embedded defaults, nothing to configure.

Backs a generated, dump-like stream up into a local repository under
./demo-data, edits 1% of it, runs an incremental backup, lists and checks the
snapshots, restores the latest and proves it equals the source, then prints a
summary. The repository and its master key stay in ./demo-data to look at.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import time
from pathlib import Path

from scholar_ops.datagen import CompareSink, EditedStream, GeneratedStream
from vault.archiver import backup_stream
from vault.checker import check
from vault.crypto.keys import MasterKey
from vault.repository import Repository
from vault.restorer import restore_stream
from vault.snapshot import Snapshot
from vault.storage import LocalStorage

MB = 1 << 20


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _line(snap: Snapshot) -> str:
    s = snap.stats
    return (
        f"  {snap.short_id}  {snap.backup_type:<11} {snap.timestamp[:19]}  size {_human(snap.size_bytes):>10}"
        f"  new {_human(s['bytes_new']):>10}  stored {_human(s['bytes_stored']):>10}"
        f"  {snap.size_bytes / 1e6 / max(s['duration_s'], 1e-3):6.0f} MB/s"
    )


def run(data_dir: Path, size: int) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    key_file = data_dir / "master.key"
    key_file.write_text(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)
    master = MasterKey.from_file(key_file)
    repo = Repository.init(LocalStorage(data_dir / "repository"), master)
    print(f"repository  {repo.location}  (master key in {key_file})")

    def source() -> GeneratedStream:
        return GeneratedStream(size, seed=2026)

    edit = secrets.token_bytes(size // 100)
    first = backup_stream(repo, source(), component="demo", target="stream", backup_type="full")
    second = backup_stream(
        repo, EditedStream(source(), size // 2, edit), component="demo", target="stream"
    )
    print("\nsnapshots")
    for snap in repo.snapshots():
        print(_line(snap))
    t0 = time.perf_counter()
    report = check(repo, read_data=1.0)
    print(
        f"\ncheck       {'ok' if report.ok else 'FAILED'}: {report.snapshots} snapshots, "
        f"{report.packs_read} packs, {report.chunks_read} chunks read back in {time.perf_counter() - t0:.1f} s"
    )
    for p in report.problems:
        print(f"  problem: {p}")
    latest = repo.find_snapshot("latest", component="demo")
    sink = CompareSink(EditedStream(source(), size // 2, edit))
    t0 = time.perf_counter()
    restore_stream(repo, latest, sink)
    took = time.perf_counter() - t0
    print(
        f"restore     {latest.short_id}: {_human(sink.written)} in {took:.1f} s "
        f"({sink.written / 1e6 / took:.0f} MB/s), identical to the source: {sink.identical}"
    )
    ratio = second.stats["bytes_stored"] / first.stats["bytes_stored"]
    print(
        f"\nsummary     full stored {_human(first.stats['bytes_stored'])} for {_human(size)}; "
        f"incremental after a 1% edit stored {_human(second.stats['bytes_stored'])} ({ratio:.1%} of the full)"
    )
    if not (report.ok and sink.identical):
        raise SystemExit("demo FAILED")


def main() -> None:
    ap = argparse.ArgumentParser(description="scholar-ops demo on embedded defaults")
    ap.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    ap.add_argument("--size-mib", type=int, default=256)
    args = ap.parse_args()
    run(args.data_dir, args.size_mib * MB)


if __name__ == "__main__":
    main()
