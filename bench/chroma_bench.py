"""Benchmark Chroma backups and restores: throughput and peak RSS.

A collection of --records 384-dimension vectors (drawn around cluster centres
with numpy, ~400-character documents, small metadata; cosine space) is loaded
into an embedded Chroma directory first: that load is measured and reported but
is not part of any timed figure. Then, each in a child process (so peak RSS is
its own), into one fresh local repository:

  backup    embedded  backup_chroma, full, of the embedded directory
  backup    server    the same directory served by `chroma run`, over HTTP
  backup    physical  backup_chroma(physical=True) of the directory
  restore   server    restore_chroma into an empty `chroma run` server
  restore   embedded  restore_chroma into a new embedded directory
  restore   physical  restore_chroma_physical of the physical copy (no re-indexing)

In the embedded rows Chroma's engine runs inside the measured process, so peak
RSS includes its own caches and HNSW index (the sample queries load it); the
server rows show the adapter alone (the server's own peak, VmHWM, is listed
apart). Memory is bounded by --batch, not by the collection: compare the server
rows of a small and a large run.

    uv run python bench/chroma_bench.py [--records 200000] [--batch 1000] [--dir /tmp]
                                        [--modes embedded,server,physical] [--json] [--keep]

Every restore is verified (counts, sample nearest-neighbour queries); a
verification failure fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1e6
DIM = 384
COLLECTION = "aischolar_chunks"
MASTER_KEY = "benchmark-master-key-0123456789"
_WORDS = [
    "retrieval", "augmented", "generation", "vector", "embedding", "transformer", "attention",
    "corpus", "citation", "scholar", "paper", "abstract", "method", "result", "dataset",
    "benchmark", "evaluation", "model", "training", "inference", "query", "document", "chunk",
    "index", "similarity", "cosine", "résumé", "naïve",
]  # fmt: skip


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _repo(workdir: Path, create: bool = False) -> Any:
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    storage = LocalStorage(workdir / "repo")
    master = MasterKey.from_string(MASTER_KEY)
    return Repository.init(storage, master) if create else Repository.open(storage, master)


# -- children ---------------------------------------------------------------------------


def child_generate(workdir: Path, records: int, batch: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from scholar_ops.sources.chroma.conninfo import ChromaSource

    _repo(workdir, create=True)
    client = ChromaSource.embedded(workdir / "source").client()
    col = client.create_collection(
        COLLECTION,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"app": "AI Scholar", "model": "all-MiniLM-L6-v2"},
    )
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, DIM)).astype(np.float32)
    words = np.array(_WORDS)
    step = min(batch * 5, client.get_max_batch_size())
    t_add = 0.0
    for start in range(0, records, step):
        n = min(step, records - start)
        emb = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal(
            (n, DIM), dtype=np.float32
        )
        docs = [" ".join(words[rng.integers(0, len(words), 55)]) for _ in range(n)]
        metas: Any = [
            {"paper": f"p{(start + i) // 20}", "chunk": (start + i) % 20, "year": 2000 + i % 25}
            for i in range(n)
        ]
        ids = [f"{rng.integers(1 << 62):016x}-{start + i}" for i in range(n)]  # random-looking
        t0 = time.perf_counter()
        col.add(ids=ids, embeddings=emb, documents=docs, metadatas=metas)
        t_add += time.perf_counter() - t0
    size = sum(f.stat().st_size for f in (workdir / "source").rglob("*") if f.is_file())
    return {
        "records": records,
        "add_s": round(t_add, 1),
        "add_records_s": round(records / t_add),
        "dir_mb": round(size / MB, 1),
    }


def child_backup(workdir: Path, mode: str, port: int | None, batch: int) -> dict[str, Any]:
    from scholar_ops.sources.chroma.conninfo import ChromaSource
    from scholar_ops.sources.chroma.dump import backup_chroma

    repo = _repo(workdir)
    if mode == "server":
        assert port is not None
        source = ChromaSource.server("127.0.0.1", port)
    else:
        source = ChromaSource.embedded(workdir / "source")
    t0 = time.perf_counter()
    snap = backup_chroma(
        repo, source, backup_type="full", batch_size=batch, physical=mode == "physical"
    )
    seconds = time.perf_counter() - t0
    records = int(snap.details["records"])
    return {
        "op": "backup",
        "mode": mode,
        "snapshot": snap.backup_id,
        "records": records,
        "seconds": round(seconds, 1),
        "records_s": round(records / seconds),
        "mb_s": round(snap.size_bytes / MB / seconds, 1),
        "input_mb": round(snap.size_bytes / MB, 1),
        "stored_mb": round(snap.stats["bytes_stored"] / MB, 1),
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_restore(
    workdir: Path, mode: str, port: int | None, snapshot: str, batch: int
) -> dict[str, Any]:
    from scholar_ops.sources.chroma.conninfo import ChromaSource
    from scholar_ops.sources.chroma.restore import restore_chroma, restore_chroma_physical

    repo = _repo(workdir)
    snap = repo.load_snapshot(snapshot)
    if mode == "physical":
        t0 = time.perf_counter()
        result = restore_chroma_physical(repo, snap, workdir / "restored-physical")
        seconds = time.perf_counter() - t0
    elif mode == "server":
        assert port is not None
        dest = ChromaSource.server("127.0.0.1", port)
    else:
        dest = ChromaSource.embedded(workdir / "restored")
    if mode != "physical":
        t0 = time.perf_counter()
        result = restore_chroma(repo, snap, dest, batch_size=batch)
        seconds = time.perf_counter() - t0
    if not result.ok:
        raise SystemExit(f"restore verification failed: {result.mismatches}")
    return {
        "op": "restore",
        "mode": mode,
        "records": result.records,
        "seconds": round(seconds, 1),
        "records_s": round(result.records / seconds),
        "mb_s": round(snap.size_bytes / MB / seconds, 1),
        "input_mb": round(snap.size_bytes / MB, 1),
        "samples": result.samples,
        "peak_rss_mb": _peak_rss_mb(),
    }


# -- parent -----------------------------------------------------------------------------


def _run_child(args: list[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args[:3]} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


class _Server:
    """`chroma run` on a directory, on a free loopback port."""

    def __init__(self, path: Path, log: Path) -> None:
        from scholar_ops.sources.process import free_port, wait_for_port

        self.port = free_port()
        exe = Path(sys.executable).parent / "chroma"
        port = str(self.port)
        with log.open("ab") as f:
            self.proc = subprocess.Popen(
                [str(exe), "run", "--path", str(path), "--host", "127.0.0.1", "--port", port],
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=60)
        time.sleep(1.0)

    def peak_rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    work = Path(tempfile.mkdtemp(prefix="chroma-bench-", dir=args.dir))
    common = ["--dir", str(work), "--batch", str(args.batch)]
    rows: list[dict[str, Any]] = []
    try:
        gen = _run_child(
            ["--child", "generate", *common, "--records", str(args.records)], args.timeout
        )
        snapshot = physical = None
        for mode in [m for m in ("embedded", "physical") if m in modes]:
            row = _run_child(["--child", "backup", "--mode", mode, *common], args.timeout)
            rows.append(row)
            if mode == "embedded":
                snapshot = row["snapshot"]
            else:
                physical = row["snapshot"]
        if "server" in modes:
            srv = _Server(work / "source", work / "server.log")
            try:
                row = _run_child(
                    ["--child", "backup", "--mode", "server", "--port", str(srv.port), *common],
                    args.timeout,
                )
                row["server_peak_rss_mb"] = srv.peak_rss_mb()
                rows.append(row)
                snapshot = snapshot or row["snapshot"]
            finally:
                srv.stop()
            target = _Server(work / "restore-server", work / "server.log")
            try:
                child = ["--child", "restore", "--mode", "server", "--port", str(target.port)]
                row = _run_child(
                    [*child, "--snapshot", str(snapshot), *common],
                    args.timeout,
                )
                row["server_peak_rss_mb"] = target.peak_rss_mb()
                rows.append(row)
            finally:
                target.stop()
        if "embedded" in modes and snapshot:
            rows.append(
                _run_child(
                    ["--child", "restore", "--mode", "embedded", "--snapshot", snapshot, *common],
                    args.timeout,
                )
            )
        if physical:
            rows.append(
                _run_child(
                    ["--child", "restore", "--mode", "physical", "--snapshot", physical, *common],
                    args.timeout,
                )
            )
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return gen, rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000, help="records per Chroma call")
    ap.add_argument("--modes", default="embedded,server,physical")
    ap.add_argument("--dir", default=None, help="where to put the temporary directory")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", action="store_true", help="print results as JSON lines")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        workdir = Path(args.dir)
        if args.child == "generate":
            res = child_generate(workdir, args.records, args.batch, seed=1)
        elif args.child == "backup":
            res = child_backup(workdir, args.mode, args.port, args.batch)
        else:
            res = child_restore(workdir, args.mode, args.port, args.snapshot, args.batch)
        print(json.dumps(res))
        return
    gen, rows = run(args)
    if args.json:
        print(json.dumps({"op": "load", **gen}))
        for r in rows:
            print(json.dumps({k: v for k, v in r.items() if k != "snapshot"}))
        return
    print(
        f"load (not timed below): {gen['records']} records of {DIM} dimensions added in "
        f"{gen['add_s']} s ({gen['add_records_s']} records/s); directory {gen['dir_mb']} MB"
    )
    print(
        f"{'op':>8} {'mode':>9} {'records':>8} {'seconds':>8} {'records/s':>10} "
        f"{'MB/s':>7} {'stream MB':>10} {'stored MB':>10} {'peak RSS MB':>12} {'server RSS MB':>14}"
    )
    for r in rows:
        print(
            f"{r['op']:>8} {r['mode']:>9} {r['records']:>8} {r['seconds']:>8} "
            f"{r['records_s']:>10} {r['mb_s']:>7} {r['input_mb']:>10} {r.get('stored_mb', ''):>10} "
            f"{r['peak_rss_mb']:>12} "
            f"{r.get('server_peak_rss_mb') or '':>14}"
        )
    if os.environ.get("CHROMA_BENCH_DEBUG"):
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
