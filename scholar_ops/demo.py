"""`make demo`: the main job end to end on embedded defaults, nothing to configure.

1. starts a throwaway PostgreSQL cluster from the local binaries (demo-data/postgres)
2. loads a realistic sample of the AI Scholar data (users, ~2 KB documents, text
   chunks, 384-dim embeddings as real[], a query log)
3. creates the blocks (`scholar-ops setup`): a local repository in
   demo-data/repository, the master key in a Secret block (and demo-data/master.key)
4. runs the full-backup flow, applies a typical day of churn (1% new documents,
   0.1% updated, a growing query log) and runs the incremental-backup flow
5. lists the snapshots, checks the repository reading every chunk back
6. restores the latest snapshot into a new database through the restore flow and
   proves it equals the source (schema dump, per-table checksums, sequences)
7. prints a summary. Prefect's run history stays in demo-data/prefect.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

DEMO_REPOSITORY = "demo-repository"
DEMO_TARGET = "demo-aischolar"
DEMO_KEY_SECRET = "demo-master-key"


def _step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def run(data_dir: Path, documents: int) -> bool:
    data_dir = data_dir.resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    # Before Prefect is imported: the run history lands in demo-data/prefect, not in ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(data_dir / "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A busy 2-core machine can take longer than Prefect's default 20 s to start its ephemeral API.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

    import psycopg

    from flows.backup.catalog import backup_catalog
    from flows.backup.full_backup import full_backup
    from flows.backup.incremental_backup import incremental_backup
    from flows.backup.restore import postgres_restore
    from flows.backup.verify import verify_repository
    from scholar_ops.cli import main as cli
    from scholar_ops.pgcluster import throwaway_cluster
    from scholar_ops.reports import human_bytes
    from scholar_ops.sample import aischolar
    from scholar_ops.sample.fingerprint import database_fingerprint

    with throwaway_cluster(data_dir / "postgres", keep_data=True) as pg:
        _step(f"PostgreSQL {pg.host}:{pg.port} (data in {pg.datadir})")
        source = pg.create_database("aischolar")
        t0 = time.perf_counter()
        with psycopg.connect(source, autocommit=True) as conn:
            aischolar.create_schema(conn)
            counts = aischolar.load_sample(conn, documents=documents, seed=2026)
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        db_size = int(size[0]) if size else 0
        print(
            f"loaded the AI Scholar sample in {time.perf_counter() - t0:.1f} s: "
            + ", ".join(f"{n} {t}" for t, n in counts.items())
            + f" ({human_bytes(db_size)})"
        )

        _step("scholar-ops setup (blocks: repository, master key Secret, PostgreSQL target)")
        key_file = data_dir / "master.key"
        key_file.write_text(secrets.token_hex(32) + "\n")
        key_file.chmod(0o600)
        rc = cli([
            "--repository", DEMO_REPOSITORY, "setup",
            "--repo-path", str(data_dir / "repository"),
            "--master-key-file", str(key_file), "--master-key-secret", DEMO_KEY_SECRET,
            "--target", DEMO_TARGET, "--pg-host", pg.host, "--pg-port", str(pg.port),
            "--pg-database", "aischolar", "--pg-user", pg.user,
        ])  # fmt: skip
        if rc != 0:
            return False

        _step("full-backup flow")
        full = full_backup(postgres_targets=[DEMO_TARGET], repository=DEMO_REPOSITORY)[0]
        _print_backup(full, human_bytes)

        _step("a typical day of churn: 1% new documents, 0.1% updated, the query log grows")
        with psycopg.connect(source, autocommit=True) as conn:
            churn = aischolar.apply_daily_churn(conn, seed=7)
        print(", ".join(f"{k} {v}" for k, v in churn.items()))

        _step("incremental-backup flow")
        inc = incremental_backup(postgres_targets=[DEMO_TARGET], repository=DEMO_REPOSITORY)[0]
        _print_backup(inc, human_bytes)

        _step("snapshots (backup-catalog flow)")
        for s in backup_catalog(repository=DEMO_REPOSITORY):
            r = s["row"]
            print(f"  {r['id']}  {r['time']}  {r['component']}/{r['target']}  {r['type']:<11}  "
                  f"size {r['size']:>10}  stored {r['stored']:>10}")  # fmt: skip

        _step("verify-repository flow (structure, and every chunk read back)")
        report = verify_repository(repository=DEMO_REPOSITORY, read_data=1.0)
        print(
            f"ok: {report['snapshots']} snapshots, {report['packs_read']} packs and "
            f"{report['chunks_read']} chunks read back"
        )

        _step("restore-postgres flow: latest snapshot into a new database")
        restored = postgres_restore(
            target=DEMO_TARGET, database="aischolar_restored", repository=DEMO_REPOSITORY
        )
        print(
            f"restored {restored['tables']} tables, {restored['rows']} rows in {restored['duration_s']} s; "
            "row counts match the manifest"
        )
        differences = database_fingerprint(source, pg.tool("pg_dump")).diff(
            database_fingerprint(pg.dsn("aischolar_restored"), pg.tool("pg_dump"))
        )
        identical = not differences
        print(
            "restored database equals the source (schema, every table's rows, sequences): "
            + ("yes" if identical else "NO")
        )
        for d in differences[:20]:
            print(f"  difference: {d}")

        _step("summary")
        ratio = inc["stored_bytes"] / max(full["stored_bytes"], 1)
        print(
            f"database       {human_bytes(db_size)} on disk, {human_bytes(full['size_bytes'])} of dump data"
        )
        print(f"full backup    stored {human_bytes(full['stored_bytes'])} in {full['duration_s']} s "
              f"({full['throughput_mb_s']} MB/s)")  # fmt: skip
        print(f"incremental    stored {human_bytes(inc['stored_bytes'])} after a day of churn "
              f"({ratio:.1%} of the full backup)")  # fmt: skip
        print(f"restore        {restored['duration_s']} s, identical to the source: {identical}")
        print(f"\nrepository     {data_dir / 'repository'} (master key: {key_file})")
        print(
            f"prefect runs   PREFECT_HOME={data_dir / 'prefect'} uv run prefect server start  # then open the UI"
        )
        print(f"postgres data  {pg.datadir} (stopped; start with pg_ctl -D {pg.datadir} start)")
    return identical


def _print_backup(r: dict[str, Any], human: Any) -> None:
    print(
        f"snapshot {r['short_id']}: {r['tables']} tables, {human(r['size_bytes'])} of dump data, "
        f"{human(r['new_bytes'])} new, {human(r['stored_bytes'])} stored, {r['duration_s']} s "
        f"({r['throughput_mb_s']} MB/s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="scholar-ops demo on embedded defaults")
    ap.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    ap.add_argument("--documents", type=int, default=6000, help="size of the AI Scholar sample")
    args = ap.parse_args()
    if not run(args.data_dir, args.documents):
        raise SystemExit("demo FAILED")


if __name__ == "__main__":
    main()
