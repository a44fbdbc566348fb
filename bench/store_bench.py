"""Benchmark the backup store alone on generated, dump-like text.

For each input size, a child process (so peak RSS is its own) backs a
generated stream up into a fresh local repository, restores it to a sink that
compares every byte, and reports throughput and peak RSS.

    uv run python bench/store_bench.py [--sizes 256,1024] [--dir /tmp] [--level 3]

Targets (2-core machine): store >= 200 MB/s, restore >= 250 MB/s, peak RSS <= 300 MB,
and peak RSS the same for both sizes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1 << 20


def child(size_mib: int, workdir: str, compression: str, level: int | None) -> dict[str, object]:
    from scholar_ops.testbed.datagen import CompareSink, GeneratedStream
    from scholar_ops.vault.archiver import backup_stream
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.restorer import Restorer
    from scholar_ops.vault.storage import LocalStorage

    size = size_mib * MB
    storage = LocalStorage(Path(workdir) / "repo")
    master = MasterKey.from_string("benchmark-master-key-0123456789")
    repo = Repository.init(storage, master, compression=compression, compression_level=level)
    source = GeneratedStream(size, seed=1)  # built before the clock starts
    t0 = time.perf_counter()
    snap = backup_stream(repo, source, component="bench", target="stream")
    t_store = time.perf_counter() - t0
    rss_store = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sink = CompareSink(GeneratedStream(size, seed=1))
    t0 = time.perf_counter()
    with repo.lock("restore"):
        Restorer(repo).restore_entry(snap, snap.entries[0], sink)
    t_restore = time.perf_counter() - t0
    assert sink.identical, "restore differs from source"
    return {
        "size_mib": size_mib,
        "compression": f"{compression}{'' if level is None else '-' + str(level)}",
        "store_mb_s": round(size / 1e6 / t_store, 1),
        "restore_mb_s": round(size / 1e6 / t_restore, 1),
        "stored_ratio": round(snap.stats["bytes_stored"] / size, 3),
        "peak_rss_store_mb": round(rss_store, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="256,1024", help="input sizes in MiB, comma-separated")
    ap.add_argument("--dir", default=None, help="where to put the temporary repository")
    ap.add_argument("--compression", default="zstd")
    ap.add_argument("--level", type=int, default=None)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.dir, args.compression, args.level)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        work = tempfile.mkdtemp(prefix="store-bench-", dir=args.dir)
        try:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                str(size),
                "--dir",
                work,
                "--compression",
                args.compression,
            ]
            if args.level is not None:
                cmd += ["--level", str(args.level)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        for r in results:
            print(json.dumps(r))
        return
    print(
        f"{'input':>8} {'codec':>8} {'store MB/s':>11} {'restore MB/s':>13} {'stored':>7} {'peak RSS MB':>12}"
    )
    for r in results:
        print(
            f"{r['size_mib']:>5} MiB {r['compression']:>8} {r['store_mb_s']:>11} {r['restore_mb_s']:>13} "
            f"{r['stored_ratio']:>7} {r['peak_rss_mb']:>12}"
        )


if __name__ == "__main__":
    main()
