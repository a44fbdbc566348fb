"""Benchmark the read-only verbs an operator types: how long until the answer.

A local repository with N snapshots (small streams, written through the engine),
and a restic repository with the same N snapshots, side by side in one run; each
command is a fresh process, timed end to end, median of ``--rounds``:

  scholar-ops snapshots     the listing (reads the repository directly, no Prefect)
  scholar-ops check         structure check (no --read-data)
  scholar-ops key list
  restic snapshots          the peer
  restic check              the peer's structure check

The profile that `scholar-ops setup` writes (location and key file) is written
here, so no Prefect is involved; ``--prefect`` also times what a flow-based verb
pays before any work (importing Prefect, starting its ephemeral API), for reference.

    uv run python bench/cli_bench.py [--snapshots 100] [--rounds 3] [--prefect] [--check]

Target: ``scholar-ops snapshots`` under 1 s (``--check`` exits 1 when missed).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "cli-bench-master-key-0123456789abcdef"
TARGET_S = 1.0


def make_repositories(work: Path, n: int) -> dict[str, str]:
    from scholar_ops.cli.direct import Profile
    from scholar_ops.vault.archiver import backup_stream
    from scholar_ops.vault.crypto.keys import MasterKey
    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.storage import LocalStorage

    key_file = work / "master.key"
    key_file.write_text(KEY + "\n")
    repo = Repository.init(LocalStorage(work / "repo"), MasterKey.from_string(KEY))
    src = work / "src"
    src.mkdir()
    env = {**os.environ, "RESTIC_REPOSITORY": str(work / "restic"), "RESTIC_PASSWORD": KEY}
    subprocess.run(["restic", "init", "-q"], env=env, check=True, timeout=120)
    for i in range(n):
        data = os.urandom(2048) + f"snapshot {i}".encode()
        backup_stream(repo, io.BytesIO(data), component="files", target=f"t{i % 4}")
        (src / "data").write_bytes(data)
        subprocess.run(["restic", "backup", "-q", str(src)], env=env, check=True, timeout=120)
    config = work / "config"
    os.environ["SCHOLAR_OPS_CONFIG_DIR"] = str(config)
    Profile("bench-repository", str(work / "repo"), "unused", str(key_file)).save()
    return {
        "SCHOLAR_OPS_CONFIG_DIR": str(config),
        "SCHOLAR_OPS_STATE_DIR": str(work / "state"),
        "SCHOLAR_OPS_REPOSITORY": "bench-repository",
        "RESTIC_REPOSITORY": str(work / "restic"),
        "RESTIC_PASSWORD": KEY,
        "PREFECT_HOME": str(work / "prefect"),
    }


def timed(cmd: list[str], env: dict[str, str], rounds: int) -> tuple[float, str]:
    times = []
    out = ""
    for _ in range(rounds):
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out = proc.stdout
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshots", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prefect", action="store_true", help="also time the flow-based listing")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("restic not found: run `make deps`")
    work = Path(tempfile.mkdtemp(prefix="cli-bench-", dir=args.dir))
    try:
        extra = make_repositories(work, args.snapshots)
        env = {**os.environ, **extra, "PYTHONPATH": str(ROOT)}
        env.pop("PREFECT_API_URL", None)
        cli = [sys.executable, "-m", "scholar_ops.cli"]
        rows: dict[str, float] = {}
        rows["scholar-ops snapshots"], out = timed([*cli, "snapshots"], env, args.rounds)
        assert f"{args.snapshots} snapshots" in out, out[-500:]
        rows["restic snapshots"], _ = timed(["restic", "snapshots", "-q"], env, args.rounds)
        rows["scholar-ops check"], _ = timed([*cli, "check"], env, args.rounds)
        rows["restic check"], _ = timed(["restic", "check", "-q"], env, args.rounds)
        rows["scholar-ops key list"], _ = timed([*cli, "key", "list"], env, args.rounds)
        if args.prefect:
            # What every flow-based verb paid before it did any work: importing Prefect
            # and starting its ephemeral API (no PREFECT_API_URL), as a listing used to.
            hello = (
                "import anyio\n"
                "from prefect.client.orchestration import get_client\n"
                "async def main():\n"
                "    async with get_client() as client:\n"
                "        await client.hello()\n"
                "anyio.run(main)\n"
            )
            rows["Prefect import + ephemeral API"], _ = timed(
                [sys.executable, "-c", hello],
                {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                1,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"snapshots": args.snapshots, "seconds": rows}, indent=2))
    else:
        print(f"{args.snapshots} snapshots, median of {args.rounds} runs (a fresh process each)")
        for name, secs in rows.items():
            print(f"  {name:<34} {secs:6.2f} s")
    listing = rows["scholar-ops snapshots"]
    verdict = "met" if listing < TARGET_S else "MISSED"
    print(f"target: scholar-ops snapshots under {TARGET_S:.0f} s: {listing:.2f} s ({verdict})")
    if args.check and listing >= TARGET_S:
        sys.exit(1)


if __name__ == "__main__":
    main()
