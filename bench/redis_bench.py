"""Benchmark Redis backups and restores: throughput and peak RSS.

For each size, a throwaway source server is filled with about that many MB of
cache-like data (pipelined SETs of 1-10 KB values, half random bytes, half text;
plus hashes of 100 fields and sorted sets of 1,000 members, ~10% of the bytes).
Then a child process (so that its peak RSS is its own) runs, against it:

  backup        scholar_ops.sources.redis.dump.backup_redis, full, into a fresh local repository
  incremental   after 1% of the string keys are rewritten: a second backup (stored bytes)
  rdb restore   restore_redis_rdb: the RDB back into a file
  restore into  restore_redis_into an empty running server (existing="fail"): a
                temporary server loads the RDB, every key is copied by DUMP/RESTORE,
                then verified (counts per database and type, sampled digests)

Throughput is RDB MB per second (the RDB is ~75% of the data: Redis compresses
text values with LZF). For reference, ``floor`` is ``redis-cli --rdb - >/dev/null``
on the same server: how fast the server's fork produces the RDB, the bound of any
backup through replication; ``transfer`` is our RDB stream into the store alone,
``backup`` adds the keyspace survey and the sampled digests (before and after).
RSS is the child's own peak (the servers are separate processes; the temporary
restore server's peak is shown apart).

    uv run python bench/redis_bench.py [--sizes 100,500] [--dir /tmp] [--json]

Target: peak RSS bounded, the same for both sizes (not proportional to the data set).
"""

from __future__ import annotations

import argparse
import json
import random
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

from scholar_ops.testbed.sample.redisvalues import text_pool, value  # noqa: E402

MB = 1_000_000


def fill(port: int, size_mb: int, seed: int = 1) -> int:
    """Load about ``size_mb`` MB into the server; returns the number of string keys."""
    import redis

    rng = random.Random(seed)
    pool = text_pool(rng, 4 << 20)
    client = redis.Redis(port=port, socket_timeout=120)
    pipe = client.pipeline(transaction=False)
    total = n = 0
    goal = size_mb * MB
    while total < goal * 0.9:
        v = value(rng, rng.randint(1_000, 10_000), pool)
        pipe.set(f"cache:{n:09d}", v)
        n += 1
        total += len(v)
        if n % 500 == 0:
            pipe.execute()
    i = 0
    while total < goal:
        if i % 2:
            fields: dict[Any, Any] = {f"f{j}": value(rng, 100, pool) for j in range(100)}
            pipe.hset(f"doc:{i}", mapping=fields)
            total += 100 * 103
        else:
            pipe.zadd(f"rank:{i}", {f"paper:{j}": rng.random() for j in range(1000)})
            total += 1000 * 20
        i += 1
        if i % 50 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return n


def child(
    size_mb: int, port: int, target_port: int, workdir: str, strings: int
) -> dict[str, object]:
    import redis

    from scholar_ops.sources.redis.conninfo import RedisConnInfo
    from scholar_ops.sources.redis.dump import backup_redis
    from scholar_ops.sources.redis.restore import restore_redis_into, restore_redis_rdb
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    repo = Repository.init(
        LocalStorage(Path(workdir) / "repo"),
        MasterKey.from_string("benchmark-master-key-0123456789"),
    )
    source = RedisConnInfo(port=port, socket_timeout=120)
    target = RedisConnInfo(port=target_port, socket_timeout=120)

    t0 = time.perf_counter()
    snap = backup_redis(repo, source, backup_type="full")
    t_backup = time.perf_counter() - t0
    rss_backup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rdb_bytes = int(snap.details["rdb"]["bytes"])

    rng = random.Random(99)
    pool = text_pool(rng, 1 << 20)
    client = redis.Redis(port=port, socket_timeout=120)
    pipe = client.pipeline(transaction=False)
    for i in rng.sample(range(strings), strings // 100):
        pipe.set(f"cache:{i:09d}", value(rng, rng.randint(1_000, 10_000), pool))
    pipe.execute()
    client.close()
    t0 = time.perf_counter()
    incr = backup_redis(repo, source)
    t_incr = time.perf_counter() - t0

    t0 = time.perf_counter()
    path = restore_redis_rdb(repo, incr, Path(workdir) / "rdb")
    t_rdb = time.perf_counter() - t0
    path.unlink()

    t0 = time.perf_counter()
    result = restore_redis_into(repo, incr, target, workdir=workdir)
    t_into = time.perf_counter() - t0
    if result.mismatches:
        raise SystemExit(f"restore differs from the backup: {result.mismatches[:5]}")
    keys = sum(result.keys.values())
    expected = sum(d["keys"] for d in incr.details["databases"].values())
    if keys != expected:
        raise SystemExit(f"restored {keys} keys, the backup holds {expected}")
    return {
        "size_mb": size_mb,
        "keys": keys,
        "rdb_mb": round(rdb_bytes / MB, 1),
        "backup_mb_s": round(rdb_bytes / MB / t_backup, 1),
        "transfer_mb_s": round(rdb_bytes / MB / float(snap.details["rdb"]["transfer_s"]), 1),
        "backup_s": round(t_backup, 2),
        "incr_s": round(t_incr, 2),
        "incr_stored_pct": round(100 * incr.stats["bytes_stored"] / snap.stats["bytes_stored"], 1),
        "rdb_restore_mb_s": round(rdb_bytes / MB / t_rdb, 1),
        "restore_into_mb_s": round(rdb_bytes / MB / t_into, 1),
        "restore_into_keys_s": round(keys / t_into),
        "restore_into_s": round(t_into, 2),
        "peak_rss_backup_mb": round(rss_backup, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "temp_server_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }


def _floor(port: int) -> float | None:
    """Seconds for redis-cli to stream the server's RDB to /dev/null (None without redis-cli)."""
    cli = shutil.which("redis-cli")
    if cli is None:
        return None
    t0 = time.perf_counter()
    with open("/dev/null", "wb") as sink:
        subprocess.run(
            [cli, "-p", str(port), "--rdb", "-"], stdout=sink, stderr=subprocess.DEVNULL,
            check=True, timeout=3600,
        )  # fmt: skip
    return time.perf_counter() - t0


def run(size: int, base: str | None) -> dict[str, object]:
    from scholar_ops.sources.redis.server import throwaway_redis

    work = tempfile.mkdtemp(prefix="redis-bench-", dir=base)
    try:
        with (
            throwaway_redis(Path(work) / "source", config={"repl-diskless-sync-delay": 0}) as src,
            throwaway_redis(Path(work) / "target") as dst,
        ):
            strings = fill(src.port, size)
            floor = _floor(src.port)
            cmd = [
                sys.executable, __file__, "--child", str(size), "--port", str(src.port),
                "--target-port", str(dst.port), "--dir", work, "--strings", str(strings),
            ]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)
            result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
            if floor is not None:
                result["floor_mb_s"] = round(float(result["rdb_mb"]) / floor, 1)
            return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="100,500", help="data set sizes in MB, comma-separated")
    ap.add_argument("--dir", default=None, help="where to put the temporary servers and repository")
    ap.add_argument("--json", action="store_true", help="print results as JSON lines")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--target-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--strings", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.port, args.target_port, args.dir, args.strings)))
        return
    results = [run(int(s), args.dir) for s in args.sizes.split(",")]
    if args.json:
        for r in results:
            print(json.dumps(r))
        return
    print(
        f"{'data':>7} {'keys':>7} {'RDB':>8} {'floor':>10} {'transfer':>10} {'backup':>10} "
        f"{'incr 1%':>8} {'RDB file':>10} {'restore into':>13} {'keys/s':>7} {'peak RSS':>9} "
        f"{'temp server':>12}"
    )
    for r in results:
        print(
            f"{r['size_mb']:>4} MB {r['keys']:>7} {r['rdb_mb']:>5} MB {r.get('floor_mb_s', '-'):>5} MB/s "
            f"{r['transfer_mb_s']:>5} MB/s {r['backup_mb_s']:>5} MB/s {r['incr_stored_pct']:>7}% "
            f"{r['rdb_restore_mb_s']:>5} MB/s {r['restore_into_mb_s']:>8} MB/s "
            f"{r['restore_into_keys_s']:>7} {r['peak_rss_mb']:>6} MB {r['temp_server_rss_mb']:>9} MB"
        )


if __name__ == "__main__":
    main()
