"""`make demo`: the main job end to end on embedded defaults, nothing to configure.

1. starts a throwaway Prometheus Pushgateway (demo-data/pushgateway), a throwaway
   PostgreSQL cluster from the local binaries (demo-data/postgres), a throwaway Redis
   server (demo-data/redis), an embedded Chroma store (demo-data/chroma) and an
   uploads directory (demo-data/uploads)
2. loads a realistic sample of the AI Scholar data: in PostgreSQL users, ~2 KB
   documents, text chunks, 384-dim embeddings as real[], a query log; in Redis
   sessions, caches, rate limits, job queues, an event stream; in Chroma document
   chunks and past queries with 384-dim embeddings (generated, no model is
   downloaded); uploaded PDFs and a configuration directory
   (see scholar_ops.testbed.sample.aischolar and scholar_ops.testbed.sample.appdata)
3. creates the blocks: `scholar-ops setup` for a local repository in
   demo-data/repository, the master key in a Secret block (and demo-data/master.key)
   and the PostgreSQL target; the Redis, Chroma and files targets and the monitoring
   settings (the Pushgateway, the demo's repository and databases) in Python
4. runs the full-backup flow over the four components (one snapshot group), applies
   a typical day of churn (1% new documents, 0.1% updated, a growing query log;
   Redis keys, Chroma records and a new upload) and runs the incremental-backup flow;
   each run pushes every target's status to the Pushgateway
5. lists the snapshots, checks the repository reading every chunk back
6. restores the latest snapshots through the restore flows: PostgreSQL into a new
   database, Redis into a second empty server and as an RDB for a new one, Chroma
   into a new directory, the uploads into a new directory; and proves each equals
   its source (PostgreSQL: schema dump, per-table checksums, sequences; Redis: every
   key, type, value and TTL; Chroma: collections, ids, documents, metadatas,
   embeddings, nearest neighbours; files: paths, contents, modes, mtimes, symlinks)
7. prints a summary
8. runs the metrics-export flow (host, databases, repository), prints the scholar_ops_*
   metrics the Pushgateway then holds, and writes demo-data/prometheus.yml (the
   production configuration pointed at the demo's Pushgateway) with the commands to
   look at them in Prometheus. Prefect's run history stays in demo-data/prefect.

The servers (PostgreSQL, Redis, the Pushgateway) are stopped at the end, whatever
happens; the Pushgateway writes its groups to demo-data/pushgateway/pushgateway.data
as it stops, and serves them again when started on that file.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scholar_ops.vault.summary import BackupSummary

DEMO_REPOSITORY = "demo-repository"
# Target blocks are named as their snapshots and metrics are (the demo has its own Prefect home).
DEMO_TARGET = "aischolar"
DEMO_KEY_SECRET = "demo-master-key"
DEMO_REDIS = "aischolar-redis"
DEMO_REDIS_RESTORE = "redis-restored"
DEMO_CHROMA = "aischolar-chroma"
DEMO_FILES = "uploads"
DEMO_MONITORING = "demo-monitoring"
COMPONENTS = ("postgres", "redis", "chroma", "files")
# The source streams its RDB without the default 5 s wait for more replicas.
_FAST_SYNC = {"repl-diskless-sync-delay": 0}


def _step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def _verdict(what: str, differences: list[str]) -> bool:
    print(f"{what}: " + ("NO" if differences else "yes"))
    for d in differences[:20]:
        print(f"  difference: {d}")
    return not differences


def run(data_dir: Path, documents: int, scale: float = 1.0) -> bool:
    """The whole demo in ``data_dir`` (emptied first); True when every restored
    component equals its source. ``documents``: size of the PostgreSQL sample;
    ``scale``: size of the Redis, Chroma and uploads samples (1.0: about 3,800 keys,
    2,200 records, 21 MB of uploads)."""
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
    # Chroma's anonymized telemetry (there may be no internet).
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    import psycopg

    from blocks.monitoring import MonitoringSettings
    from blocks.redis import RedisTarget
    from flows.backup.backup_catalog import backup_catalog
    from flows.backup.full_backup import full_backup
    from flows.backup.incremental_backup import incremental_backup
    from flows.backup.restore_chroma import restore_chroma
    from flows.backup.restore_files import restore_files
    from flows.backup.restore_postgres import restore_postgres
    from flows.backup.restore_redis import restore_redis
    from flows.backup.verify_repository import verify_repository
    from flows.monitoring.metrics_export import metrics_export
    from scholar_ops.cli import main as cli
    from scholar_ops.sources.chroma.conninfo import ChromaSource
    from scholar_ops.sources.postgres.cluster import reachable_root, throwaway_cluster
    from scholar_ops.sources.redis.server import throwaway_redis
    from scholar_ops.testbed.pushgateway import throwaway_pushgateway
    from scholar_ops.testbed.sample import aischolar, appdata
    from scholar_ops.testbed.sample.fingerprint import database_fingerprint
    from scholar_ops.vault.summary import human_bytes, human_elapsed

    chroma_dir, uploads = data_dir / "chroma", data_dir / "uploads"
    with ExitStack() as stack:
        gateway = stack.enter_context(
            throwaway_pushgateway(data_dir / "pushgateway", keep_data=True)
        )
        print(f"Pushgateway {gateway.url} (persistence file {gateway.persistence_file})")
        pg_root = reachable_root(data_dir / "postgres")
        if pg_root != data_dir / "postgres":
            # Run as root, the server runs as `postgres`, which cannot enter a private
            # checkout (root's home is mode 700): its data goes where it can, linked here.
            shutil.rmtree(pg_root, ignore_errors=True)
            (data_dir / "postgres").symlink_to(pg_root)
            print(
                f"PostgreSQL's data goes to {pg_root} (the postgres user cannot enter "
                f"{data_dir}); {_shown(data_dir / 'postgres')} links there"
            )
        pg = stack.enter_context(throwaway_cluster(pg_root, keep_data=True))
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

        redis_src = stack.enter_context(
            throwaway_redis(data_dir / "redis", keep_data=True, config=_FAST_SYNC)
        )
        _step(
            f"Redis {redis_src.host}:{redis_src.port}, Chroma in {chroma_dir}, uploads in {uploads}"
        )
        t0 = time.perf_counter()
        keys = appdata.load_redis(redis_src, scale=scale, seed=2026)
        print(
            "Redis: "
            + ", ".join(f"{n} keys in {db}" for db, n in keys.items())
            + " (sessions, cached answers and embeddings, rate limits, popularity; "
            "job queues, an event stream with consumer groups)"
        )
        chroma = ChromaSource.embedded(chroma_dir).client()
        records = appdata.load_chroma(chroma, scale=scale, seed=2026)
        print(
            "Chroma: "
            + ", ".join(f"{n} records in {c}" for c, n in records.items())
            + f" ({appdata.EMBEDDING_DIMS}-dim float32 embeddings, generated)"
        )
        tree = appdata.make_uploads(uploads, scale=scale, seed=2026)
        print(
            f"uploads: {tree['files']} files ({human_bytes(tree['bytes'])}), {tree['dirs']} "
            f"directories, {tree['symlinks']} symlinks; loaded in {time.perf_counter() - t0:.1f} s"
        )

        _step(
            "scholar-ops setup (blocks: repository, master key Secret, the PostgreSQL, Redis, "
            "Chroma and files targets)"
        )
        key_file = data_dir / "master.key"
        key_file.write_text(secrets.token_hex(32) + "\n")
        key_file.chmod(0o600)
        rc = cli([
            "--repository", DEMO_REPOSITORY, "setup",
            "--repo-path", str(data_dir / "repository"),
            "--master-key-file", str(key_file), "--master-key-secret", DEMO_KEY_SECRET,
            "--target", DEMO_TARGET, "--pg-host", pg.host, "--pg-port", str(pg.port),
            "--pg-database", "aischolar", "--pg-user", pg.user,
            "--redis-target", DEMO_REDIS, "--redis-host", redis_src.host,
            "--redis-port", str(redis_src.port),
            "--chroma-target", DEMO_CHROMA, "--chroma-path", str(chroma_dir),
            "--files", f"{DEMO_FILES}={uploads}",
        ])  # fmt: skip
        if rc != 0:
            return False
        MonitoringSettings(
            pushgateway_url=gateway.url,
            repository=DEMO_REPOSITORY,
            postgres_targets=[DEMO_TARGET],
            redis_targets=[DEMO_REDIS],
            chroma_targets=[DEMO_CHROMA],
            backup_interval_seconds=3600,
        ).save(DEMO_MONITORING, overwrite=True)
        print(f"block {DEMO_MONITORING} saved (the backups push their status there)")
        targets: dict[str, Any] = {
            "postgres_targets": [DEMO_TARGET],
            "redis_targets": [DEMO_REDIS],
            "chroma_targets": [DEMO_CHROMA],
            "file_targets": [DEMO_FILES],
            "monitoring": DEMO_MONITORING,
        }

        _step("full-backup flow (every component, one snapshot group)")
        full = _by_component(full_backup(**targets, repository=DEMO_REPOSITORY))
        for c in COMPONENTS:
            _print_backup(full[c], human_bytes)

        _step(
            "a typical day of churn: 1% new documents, 0.1% updated, the query log grows; "
            "Redis keys, Chroma records and a new upload change"
        )
        with psycopg.connect(source, autocommit=True) as conn:
            churn = aischolar.apply_daily_churn(conn, seed=7)
        print(", ".join(f"{k} {v}" for k, v in churn.items()))
        for component, changes in (
            ("redis", appdata.churn_redis(redis_src, seed=7)),
            ("chroma", appdata.churn_chroma(chroma, seed=7, base_seed=2026)),
            ("uploads", appdata.churn_uploads(uploads, seed=7)),
        ):
            print(f"{component}: " + ", ".join(f"{k} {v}" for k, v in changes.items()))

        _step("incremental-backup flow")
        inc = _by_component(incremental_backup(**targets, repository=DEMO_REPOSITORY))
        for c in COMPONENTS:
            _print_backup(inc[c], human_bytes)

        _step("snapshots (backup-catalog flow)")
        for s in backup_catalog(repository=DEMO_REPOSITORY):
            r = s["row"]
            where = f"{r['component']}/{r['target']}"
            print(f"  {r['id']}  {r['time']}  {where:<26}  {r['type']:<11}  "
                  f"size {r['size']:>10}  stored {r['stored']:>10}")  # fmt: skip

        _step("verify-repository flow (structure, and every chunk read back)")
        report = verify_repository(repository=DEMO_REPOSITORY, read_data=1.0)
        print(
            f"ok: {report.snapshots} snapshots, {report.packs_read} packs and "
            f"{report.chunks_read} chunks read back"
        )

        identical: dict[str, bool] = {}
        restore_s: dict[str, float] = {}

        _step("restore-postgres flow: latest snapshot into a new database")
        restored = restore_postgres(
            target=DEMO_TARGET, database="aischolar_restored", repository=DEMO_REPOSITORY
        )
        restore_s["postgres"] = restored.duration_s
        print(restored.line())
        differences = database_fingerprint(source, pg.tool("pg_dump")).diff(
            database_fingerprint(pg.dsn("aischolar_restored"), pg.tool("pg_dump"))
        )
        identical["postgres"] = _verdict(
            "restored database equals the source (schema, every table's rows, sequences)",
            differences,
        )

        _step("restore-redis flow: into a second, empty Redis server, and as an RDB for a new one")
        redis_dst = stack.enter_context(
            throwaway_redis(data_dir / "redis-restored", keep_data=True)
        )
        RedisTarget(host=redis_dst.host, port=redis_dst.port).save(
            DEMO_REDIS_RESTORE, overwrite=True
        )
        into = restore_redis(target=DEMO_REDIS_RESTORE, repository=DEMO_REPOSITORY)
        restore_s["redis"] = into.duration_s
        print(
            f"{into.line()} ({human_bytes(into.figures['bytes'])} of DUMP payloads, "
            f"{into.figures['sample_checked']} sampled values checked)"
        )
        rdb_dir = data_dir / "redis-rdb"
        print(restore_redis(rdb_dir=str(rdb_dir), repository=DEMO_REPOSITORY).line())
        source_keys = appdata.redis_contents(redis_src)
        ok_into = _verdict(
            "restored Redis server equals the source (every key, type, value and TTL, in every database)",
            appdata.redis_differences(source_keys, appdata.redis_contents(redis_dst)),
        )
        with throwaway_redis(rdb_dir, keep_data=True) as from_rdb:
            ok_rdb = _verdict(
                "a server started from the restored RDB equals the source (the same)",
                appdata.redis_differences(source_keys, appdata.redis_contents(from_rdb)),
            )
        identical["redis"] = ok_into and ok_rdb

        _step("restore-chroma flow: latest snapshot into a new embedded directory")
        chroma_out = data_dir / "chroma-restored"
        rc_ = restore_chroma(directory=str(chroma_out), repository=DEMO_REPOSITORY)
        restore_s["chroma"] = rc_.duration_s
        samples = sum(s[1] for s in rc_.figures["samples"].values())
        print(f"{rc_.line()} ({samples} sampled records' nearest neighbours)")
        identical["chroma"] = _verdict(
            "restored Chroma store equals the source (collections, ids, documents, metadatas, "
            "embeddings, nearest neighbours)",
            appdata.chroma_differences(chroma, ChromaSource.embedded(chroma_out).client()),
        )

        _step("restore-files flow: latest snapshot of the uploads into a new directory")
        uploads_out = data_dir / "uploads-restored"
        rf = restore_files(destination=str(uploads_out), repository=DEMO_REPOSITORY)
        restore_s["files"] = rf.duration_s
        print(rf.line())
        identical["files"] = _verdict(
            "restored uploads equal the source (paths, contents, modes, mtimes, symlinks)",
            appdata.tree_differences(uploads, uploads_out),
        )

        _step("summary")
        fb, ib = full["postgres"], inc["postgres"]
        ratio = ib.stored_bytes / max(fb.stored_bytes, 1)
        print(
            f"database       {human_bytes(db_size)} on disk, {human_bytes(fb.size_bytes)} of dump data"
        )
        print(f"full backup    stored {human_bytes(fb.stored_bytes)} in {fb.timing()}")
        print(f"incremental    stored {human_bytes(ib.stored_bytes)} after a day of churn "
              f"({ratio:.1%} of the full backup)")  # fmt: skip
        print(
            f"restore        {human_elapsed(restored.duration_s)}, identical to the source: {identical['postgres']}"
        )
        print()
        print(f"{'component':<10} {'holds (after the churn)':<44} {'full: stored':>13} "
              f"{'incr.: stored':>14} {'restore':>9}  identical")  # fmt: skip
        for c in COMPONENTS:
            f, i = full[c], inc[c]
            print(f"{c:<10} {i.items:<44} {human_bytes(f.stored_bytes):>13} "
                  f"{human_bytes(i.stored_bytes):>14} {restore_s[c]:>7} s  {identical[c]}")  # fmt: skip
        everything = all(identical[c] for c in COMPONENTS)
        print(f"every component restored identical to its source: {everything}")
        print(f"\nrepository     {data_dir / 'repository'} (master key: {key_file})")
        print(
            f"prefect runs   PREFECT_HOME={data_dir / 'prefect'} uv run prefect server start  # then open the UI"
        )
        print(f"postgres data  {pg.datadir} (stopped; start with pg_ctl -D {pg.datadir} start)")
        print(f"restored data  {chroma_out}, {uploads_out}, {rdb_dir / 'dump.rdb'}")

        _step(
            "metrics-export flow (host, databases, repository), then the scholar_ops_* "
            f"metrics the Pushgateway at {gateway.url} holds"
        )
        t0 = time.perf_counter()
        exported = metrics_export(monitoring=DEMO_MONITORING)
        collectors = ", ".join(
            f"{name} {'ok' if ok else 'FAILED'}" for name, ok in exported["collectors"].items()
        )
        print(
            f"pushed {len(exported['groups'])} groups and the export's own status in "
            f"{time.perf_counter() - t0:.1f} s; "
            f"collectors: {collectors}"
        )
        for name, error in exported["errors"].items():
            print(f"  collector {name}: {error}")
        _print_metrics(gateway.metrics(), human_bytes)

        from scholar_ops.demo_testing import run_testing_demo

        tested = run_testing_demo(data_dir, pg, DEMO_MONITORING, _step)
        print(f"functionality tests: healthy run passed and the fault was named: {tested}")
        everything = everything and tested

        _step("the metrics in Prometheus")
        prometheus_yml = data_dir / "prometheus.yml"
        prometheus_yml.write_text(_prometheus_config(gateway.address))
        print(
            f"wrote {_shown(prometheus_yml)}: docker/prometheus/prometheus.yml scraping only "
            f"the Pushgateway ({gateway.address}) every 15 s, with the alert rules of "
            "docker/prometheus/rules/ and no AlertManager (alerts show on /alerts)"
        )
        print(
            "the Pushgateway stops with the demo, keeping its groups in "
            f"{_shown(gateway.persistence_file)}: start it again on that file and port, "
            "then Prometheus:"
        )
        pushgateway_cmd = gateway.command(_shown(gateway.persistence_file))
        pushgateway_cmd[0] = _command_name(pushgateway_cmd[0])
        print(f"  {shlex.join(pushgateway_cmd)} &")
        print(
            f"  prometheus --config.file={_shown(prometheus_yml)} "
            f"--storage.tsdb.path={_shown(data_dir / 'prometheus-data')}"
        )
        print(
            "and open http://localhost:9090/graph, e.g. the query scholar_ops_backup_last_status "
            "(or scholar_ops_backup_dedup_ratio, scholar_ops_collector_up)\n"
            "(the export ran once: ScholarOpsMetricsExportStale fires on /alerts after 5 minutes)"
        )
    return everything


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (demo-data/...)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _command_name(exe: str) -> str:
    """The executable's bare name when PATH finds that same file."""
    name = Path(exe).name
    return name if shutil.which(name) == exe else exe


def _prometheus_config(pushgateway: str) -> str:
    """docker/prometheus/prometheus.yml pointed at the demo's Pushgateway: no health
    service, no self-scrape, no AlertManager (a scrape target nobody serves would be down
    and fire ScholarOpsServiceDown), the production rules, 15 s intervals."""
    import yaml

    from scholar_ops.testbed.alerting import (
        JOB_ALERTMANAGER,
        default_rule_files,
        render_prometheus_config,
    )

    rendered = render_prometheus_config(
        pushgateway, "127.0.0.1:9093", None, "15s", "15s", default_rule_files()
    )
    config = yaml.safe_load(rendered)
    config.pop("alerting", None)
    config["scrape_configs"] = [
        job for job in config["scrape_configs"] if job.get("job_name") != JOB_ALERTMANAGER
    ]
    text: str = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=1000)
    return (
        "# Written by `make demo`: docker/prometheus/prometheus.yml scraping the demo's\n"
        "# Pushgateway, with the production alert rules (scholar_ops.testbed.alerting).\n" + text
    )


#: what the demo prints of each backup target, in this order, with a note on the value
_BACKUP_METRICS = (
    ("scholar_ops_backup_last_status", ""),
    ("scholar_ops_backup_last_success_timestamp_seconds", "age"),
    ("scholar_ops_backup_size_bytes", "bytes"),
    ("scholar_ops_backup_stored_bytes", "bytes"),
    ("scholar_ops_backup_dedup_ratio", ""),
    ("scholar_ops_backup_snapshots", ""),
)
_SYSTEM_METRICS = (
    ("scholar_ops_system_cpu_usage_ratio", "percent"),
    ("scholar_ops_system_memory_used_bytes", "bytes"),
    ("scholar_ops_system_memory_total_bytes", "bytes"),
    ("scholar_ops_system_disk_used_bytes", "bytes"),
    ("scholar_ops_system_disk_total_bytes", "bytes"),
)
_HIDDEN_LABELS = ("job", "instance")


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.0f}" if abs(value) >= 1e6 else f"{value:.4g}"


def _order(labels: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    """Samples in the demo's component order, then by labels."""
    component = labels.get("component") or labels.get("collector", "").split("/")[0]
    rank = COMPONENTS.index(component) if component in COMPONENTS else -1
    return rank, sorted(labels.items())


def _print_metrics(text: str, human: Callable[[float], str]) -> None:
    """A selection of the scholar_ops_* samples of the Pushgateway's /metrics text, one
    per line as Prometheus shows them (without the job and instance labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("scholar_ops_"):
                samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    now = time.time()

    def show(name: str, note: str, where: dict[str, str] | None = None) -> None:
        for labels, value in sorted(samples.get(name, []), key=lambda x: _order(x[0])):
            if where and any(labels.get(k) != v for k, v in where.items()):
                continue
            shown = ",".join(f'{k}="{v}"' for k, v in labels.items() if k not in _HIDDEN_LABELS)
            line = f"  {name}{'{' + shown + '}' if shown else ''} {_number(value)}"
            if note == "age":
                line += f"  # {max(now - value, 0):.0f} s ago"
            elif note == "bytes":
                line += f"  # {human(value)}"
            elif note == "percent":
                line += f"  # {value:.0%}"
            print(line)

    targets = [
        (labels.get("component", ""), labels.get("target", ""))
        for labels, _ in sorted(
            samples.get("scholar_ops_backup_last_status", []), key=lambda x: _order(x[0])
        )
    ]
    print("backups (job scholar-ops-backup: each run's status, the export's snapshot counts)")
    if not targets:
        print("  none: the backup flows pushed no status (see their warnings above)")
    for component, target in targets:
        for name, note in _BACKUP_METRICS:
            show(name, note, {"component": component, "target": target})
    print("host (job scholar-ops-system)")
    for name, note in _SYSTEM_METRICS:
        show(name, note)
    print("databases (job scholar-ops-databases) and the export's collectors")
    show("scholar_ops_database_up", "")
    show("scholar_ops_collector_up", "")
    down = [
        f"{labels.get('component')}/{labels.get('target')}"
        for labels, value in samples.get("scholar_ops_backup_last_status", [])
        if value != 1
    ] + [
        f"collector {labels.get('collector')}"
        for labels, value in samples.get("scholar_ops_collector_up", [])
        if value != 1
    ]
    if down:
        print(f"NOT OK: {', '.join(down)}")


def _by_component(results: list[BackupSummary]) -> dict[str, BackupSummary]:
    out = {r.component: r for r in results}
    missing = [c for c in COMPONENTS if c not in out]
    if missing:
        raise RuntimeError(f"the backup flow returned no snapshot of {', '.join(missing)}")
    return out


def _print_backup(r: BackupSummary, human: Callable[[float], str]) -> None:
    data = "of dump data" if r.component == "postgres" else "read"
    print(
        f"{r.component + '/' + r.target:<26} snapshot {r.short_id}: {r.items}, "
        f"{human(r.size_bytes)} {data}, {human(r.new_bytes)} new, "
        f"{human(r.stored_bytes)} stored in {r.timing()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="scholar-ops demo on embedded defaults")
    ap.add_argument("--data-dir", type=Path, default=Path("demo-data"))
    ap.add_argument("--documents", type=int, default=6000, help="size of the AI Scholar sample")
    ap.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="size of the Redis, Chroma and uploads samples (1.0: ~3,800 keys, ~2,200 "
        "records, ~21 MB)",
    )
    args = ap.parse_args()
    if not run(args.data_dir, args.documents, args.scale):
        raise SystemExit("demo FAILED")


if __name__ == "__main__":
    main()
