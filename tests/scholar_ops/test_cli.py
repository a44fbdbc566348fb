"""The scholar-ops command line, in-process against the Prefect test harness and a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from scholar_ops.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "automations.yaml"


@pytest.fixture
def cli_env(prefect_harness, pg_server, tmp_path, monkeypatch):
    db = f"cli_{uuid.uuid4().hex[:8]}"
    pg_server.create_database(db)
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE papers (id int PRIMARY KEY, title text)")
        c.execute("INSERT INTO papers SELECT g, 'paper ' || g FROM generate_series(1, 500) g")
    suffix = uuid.uuid4().hex[:6]
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", f"repo-{suffix}")
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", "cli-test-master-key-0123456789")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    target = f"pg-{suffix}"
    rc = main([
        "setup", "--repo-path", str(tmp_path / "repo"), "--master-key-secret", f"key-{suffix}",
        "--target", target, "--pg-host", pg_server.host, "--pg-port", str(pg_server.port),
        "--pg-database", db, "--pg-user", pg_server.user,
    ])  # fmt: skip
    assert rc == 0
    yield {"target": target, "db": db}
    pg_server.drop_database(db)


def test_backup_list_restore_check_rotate(cli_env, pg_server, capsys):
    t = cli_env["target"]
    assert main(["backup", "--full", "--target", t]) == 0
    assert main(["backup", "--postgres", t]) == 0  # --target is an alias of --postgres
    out = capsys.readouterr().out.splitlines()
    # Snapshots are named after the target block, not the database.
    assert len(out) == 2 and all(f"postgres/{t} " in line for line in out)
    assert all(": 1 table;" in line for line in out)
    assert main(["snapshots", "--json"]) == 0
    snaps = json.loads(capsys.readouterr().out)
    assert [s["backup_type"] for s in snaps] == ["full", "incremental"]
    assert all(s["target"] == t for s in snaps)

    restored = f"r_{uuid.uuid4().hex[:6]}"
    assert main(["restore", snaps[0]["backup_id"][:10], "--to", restored, "--target", t]) == 0
    assert "row counts match" in capsys.readouterr().out
    with psycopg.connect(pg_server.dsn(restored)) as c:
        assert c.execute("SELECT count(*), max(title) FROM papers").fetchone() == (500, "paper 99")

    # A non-empty target is refused (one line, exit 2) unless --clean is given.
    assert main(["restore", "latest", "--to", restored, "--target", t]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds" in err[0] and "--clean" in err[0]
    assert main(["restore", "latest", "--to", restored, "--target", t, "--clean"]) == 0
    pg_server.drop_database(restored)

    assert main(["check", "--read-data"]) == 0
    assert "no errors" in capsys.readouterr().out
    assert main(["key", "rotate"]) == 0
    assert main(["check"]) == 0  # the Secret block now holds the new key


def test_errors_are_one_line_with_meaningful_exit_codes(cli_env, capsys):
    assert main(["restore", "deadbeef", "--to", "x", "--target", cli_env["target"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no snapshot" in err[0]
    assert main(["backup", "--target", "no-such-target"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-target" in err[0]


def test_automations_verbs_are_mounted(capsys):
    assert main(["automations", "check"]) == 0
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["automations"]
    assert f"{len(shipped)} automations OK" in capsys.readouterr().out
    assert main(["automations", "check", "--file", "/no/such/automations.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the automations file" in err[0]


def test_metrics_export_and_forget(prefect_harness, pushgateway, monkeypatch, capsys):
    from scholar_ops.monitoring import names
    from scholar_ops.monitoring.push import push_add
    from scholar_ops.monitoring.samples import gauge

    monkeypatch.setenv("SCHOLAR_OPS_PUSHGATEWAY_URL", pushgateway.url)
    target = f"retired-{uuid.uuid4().hex[:6]}"
    labels = {"component": "redis", "target": target}
    push_add(
        pushgateway.url, names.JOB_BACKUP, labels, [gauge(names.BACKUP_LAST_STATUS, 1, labels)]
    )
    assert target in pushgateway.metrics()

    assert main(["metrics", "export", "--monitoring", "no-such-block"]) == 0
    out = capsys.readouterr().out
    assert "collector system: ok" in out and "pushed   scholar-ops-system" in out
    assert "scholar_ops_system_memory_total_bytes" in pushgateway.metrics()

    assert main(["metrics", "forget", "--component", "redis", "--target", target]) == 0
    assert target not in pushgateway.metrics()
    monkeypatch.delenv("SCHOLAR_OPS_PUSHGATEWAY_URL")
    assert main(["metrics", "forget", "--component", "redis", "--target", target]) == 2
    assert "nothing to forget" in capsys.readouterr().err


def test_restore_into_a_new_server_creates_the_roles_or_fails_naming_them(
    cli_env, pg_server, tmp_path, capsys
):
    """`restore --roles` through the command line, into a new, empty cluster."""
    from psycopg import sql

    from scholar_ops.sources.postgres.cluster import throwaway_cluster

    t, db = cli_env["target"], cli_env["db"]
    owner = f"cli_owner_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
        c.execute(sql.SQL("ALTER TABLE papers OWNER TO {}").format(sql.Identifier(owner)))
    try:
        assert main(["backup", "--full", "--target", t]) == 0
        with throwaway_cluster() as new:
            new_target = f"new-{uuid.uuid4().hex[:6]}"
            assert main([
                "setup", "--repo-path", str(tmp_path / "repo"), "--target", new_target,
                "--master-key-secret", f"key-{t.removeprefix('pg-')}",
                "--pg-host", new.host, "--pg-port", str(new.port), "--pg-database", db,
                "--pg-user", new.user,
            ]) == 0  # fmt: skip
            capsys.readouterr()
            restore = ["restore", "latest", "--from-target", t, "--target", new_target, "--to", db]
            assert main([*restore, "--roles", "fail"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and owner in err[0] and "--roles create" in err[0]
            assert main(restore) == 0  # --roles create is the default
            assert f"roles created: {owner}" in capsys.readouterr().out
            with psycopg.connect(new.dsn(db)) as c:
                row = c.execute(
                    "SELECT tableowner, (SELECT count(*) FROM papers) FROM pg_tables "
                    "WHERE tablename = 'papers'"
                ).fetchone()
            assert row == (owner, 500)
    finally:
        with psycopg.connect(pg_server.dsn(db), autocommit=True) as c:
            c.execute("ALTER TABLE papers OWNER TO CURRENT_USER")
        with psycopg.connect(pg_server.dsn(), autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))
