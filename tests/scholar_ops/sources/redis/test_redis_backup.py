"""Redis backup and restore through the store, on real servers started by fixtures.

A restore must equal its source, read back by plain redis-py commands
(tests/scholar_ops/sources/redis/data.py): every type, TTLs, databases 0, 1 and 5, binary
keys and values, a 5 MB value, streams with consumer groups, functions.
"""

from __future__ import annotations

import io
import random
import threading
from dataclasses import replace

import pytest

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.sources.redis.dump import RDB_ENTRY, RedisDumpOptions, backup_redis
from scholar_ops.sources.redis.restore import (
    restore_redis_fresh,
    restore_redis_into,
    restore_redis_rdb,
    verify_redis,
)
from scholar_ops.sources.redis.server import RedisStartError, throwaway_redis
from scholar_ops.vault.errors import SourceError, TargetNotEmpty, VaultError
from tests.scholar_ops.sources.redis.conftest import FAST_SYNC, conninfo
from tests.scholar_ops.sources.redis.data import (
    DBS,
    LIBRARY,
    fill_kitchen_sink,
    fingerprint,
    functions,
    ttls,
)


@pytest.fixture
def kitchen_sink(redis_source, source):
    fill_kitchen_sink(redis_source)
    return source


def _assert_ttls_close(before, after, slack_ms=5_000):
    assert before.keys() == after.keys()
    for k, ttl in before.items():
        assert ttl > 0, k
        assert ttl - slack_ms <= after[k] <= ttl, (k, ttl, after[k])


def test_round_trip_into_a_fresh_server(redis_source, kitchen_sink, local_repo, tmp_path):
    expected = fingerprint(redis_source)
    assert sorted(expected) == list(DBS)
    expected_ttls = ttls(redis_source)
    snap = backup_redis(local_repo, kitchen_sink, backup_type="full")

    assert snap.component == "redis" and [e.name for e in snap.entries] == [RDB_ENTRY]
    d = snap.details
    assert d["server"]["redis_version"].startswith("7.")
    assert d["server"]["used_memory"] > 5_000_000
    assert d["rdb"]["diskless"] and d["rdb"]["version"] >= 9
    assert d["rdb"]["bytes"] == snap.entries[0].size
    assert d["consistency"]["writes_during_backup"] == 0
    assert d["functions"] == ["scholarlib"]
    dbs = d["databases"]
    assert {db: dbs[str(db)]["keys"] for db in DBS} == {db: len(expected[db]) for db in DBS}
    assert dbs["1"]["types"] == {"hash": 3, "list": 2}
    assert dbs["5"]["types"] == {"set": 3, "stream": 2, "zset": 4}
    assert dbs["0"]["volatile"] == {"string": 2}
    assert dbs["0"]["check"]["keys"] == [len(expected[0]) - 2, len(expected[0])]
    assert dbs["1"]["check"]["types"]["list"] == [2, 2]  # quiet server: exact
    assert all(s["stable"] and s["digest"] for db in DBS for s in dbs[str(db)]["sample"])

    with restore_redis_fresh(local_repo, snap, tmp_path / "fresh") as fresh:
        assert fingerprint(fresh) == expected
        _assert_ttls_close(expected_ttls, ttls(fresh))
        assert functions(fresh) == [b"scholarlib"]
        assert verify_redis(conninfo(fresh), snap) == []
    assert not (tmp_path / "fresh").exists()


def test_round_trip_into_a_running_server(
    redis_source, redis_target, kitchen_sink, target, local_repo
):
    expected = fingerprint(redis_source)
    expected_ttls = ttls(redis_source)
    snap = backup_redis(local_repo, kitchen_sink)
    result = restore_redis_into(local_repo, snap, target)
    assert result.mismatches == [] and result.warnings == []
    assert result.keys == {db: len(expected[db]) for db in DBS}
    assert result.types[5] == {"set": 3, "stream": 2, "zset": 4}
    assert result.functions == 1
    assert result.sample_checked == sum(len(expected[db]) for db in DBS)
    assert fingerprint(redis_target) == expected
    _assert_ttls_close(expected_ttls, ttls(redis_target))
    assert functions(redis_target) == [b"scholarlib"]


def test_existing_modes(redis_source, redis_target, source, target, local_repo):
    src = redis_source.client()
    src.set(b"shared", b"from backup")
    src.set(b"only-in-backup", b"1")
    src.close()
    snap = backup_redis(local_repo, source)
    dst = redis_target.client()

    def prepare():
        dst.flushall()
        dst.set(b"shared", b"target's own")
        dst.set(b"target-only", b"keep me?")

    prepare()
    with pytest.raises(TargetNotEmpty, match="db 0 holds 2 keys"):
        restore_redis_into(local_repo, snap, target)
    assert fingerprint(redis_target) == {
        0: {
            b"shared": ("string", b"target's own", False),
            b"target-only": ("string", b"keep me?", False),
        }
    }  # "fail" wrote nothing

    result = restore_redis_into(local_repo, snap, target, existing="skip")
    assert (result.keys, result.skipped) == ({0: 1}, {0: 1})
    assert result.mismatches == [] and result.sample_unverifiable == 1
    assert dst.get(b"shared") == b"target's own" and dst.get(b"only-in-backup") == b"1"
    assert dst.get(b"target-only") == b"keep me?"

    prepare()
    result = restore_redis_into(local_repo, snap, target, existing="replace")
    assert result.keys == {0: 2} and result.mismatches == []
    assert dst.get(b"shared") == b"from backup" and dst.get(b"target-only") == b"keep me?"

    prepare()
    result = restore_redis_into(local_repo, snap, target, existing="flush")
    assert result.keys == {0: 2} and result.mismatches == []
    assert sorted(dst.keys()) == [b"only-in-backup", b"shared"]
    dst.close()


def test_function_libraries_in_a_running_server(
    redis_source, redis_target, kitchen_sink, target, local_repo
):
    snap = backup_redis(local_repo, kitchen_sink)
    dst = redis_target.client()
    dst.execute_command("FUNCTION", "LOAD", LIBRARY.replace("42", "41"))
    with pytest.raises(TargetNotEmpty, match="function library scholarlib exists"):
        restore_redis_into(local_repo, snap, target)
    assert fingerprint(redis_target) == {}  # nothing written
    result = restore_redis_into(local_repo, snap, target, existing="skip")
    assert result.mismatches == [] and result.functions == 0
    assert result.warnings and "already exists" in result.warnings[0]
    assert dst.fcall("answer", 0) == 41  # the target's own library stays
    result = restore_redis_into(local_repo, snap, target, existing="replace")
    assert result.mismatches == [] and result.functions == 1
    assert dst.fcall("answer", 0) == 42
    dst.close()


def test_subset_of_databases(redis_source, redis_target, kitchen_sink, target, local_repo):
    expected = fingerprint(redis_source)
    snap = backup_redis(local_repo, kitchen_sink)
    dst = redis_target.client(0)
    dst.set(b"untouched", b"db 0 is not restored")
    result = restore_redis_into(local_repo, snap, target, dbs=[5])
    assert result.dbs == [5] and result.keys == {5: len(expected[5])} and result.mismatches == []
    assert result.functions == 0  # functions are server-wide: only with every database
    got = fingerprint(redis_target)
    assert got[5] == expected[5] and list(got[0]) == [b"untouched"] and 1 not in got
    dst.close()


def test_verification_finds_differences(redis_source, kitchen_sink, local_repo):
    snap = backup_redis(local_repo, kitchen_sink)
    with restore_redis_fresh(local_repo, snap) as fresh:
        c = fresh.client(1)
        c.rpush(b"list:small", b"one more")
        c.delete(b"hash:small", b"hash:big")
        c.persist(b"ttl:hash")
        c.close()
        problems = verify_redis(conninfo(fresh), snap)
    # ttl:hash has a TTL: it may have expired by the time of a restore, hence the ranges
    assert "db 1: 3 keys restored, expected 4..5" in problems
    assert "db 1: 1 keys of type hash restored, expected 2..3" in problems
    assert "db 1: key b'list:small' has a different value" in problems
    assert "db 1: key b'hash:small' is missing" in problems
    assert "db 1: key b'ttl:hash' had a TTL, now the opposite" in problems


def test_rdb_file_restore(redis_source, kitchen_sink, local_repo, tmp_path):
    snap = backup_redis(local_repo, kitchen_sink)
    path = restore_redis_rdb(local_repo, snap, tmp_path / "rdb")
    assert path == tmp_path / "rdb" / "dump.rdb"
    data = path.read_bytes()
    assert data.startswith(b"REDIS00") and len(data) == snap.details["rdb"]["bytes"]
    assert list((tmp_path / "rdb").iterdir()) == [path]
    with pytest.raises(TargetNotEmpty, match="already exists"):
        restore_redis_rdb(local_repo, snap, tmp_path / "rdb")
    restore_redis_rdb(local_repo, snap, tmp_path / "rdb", overwrite=True)
    with throwaway_redis(rdb=path, config={"databases": 16}) as server:  # how a drill starts one
        assert fingerprint(server) == fingerprint(redis_source)


def test_disk_based_transfer(local_repo, tmp_path):
    with throwaway_redis(tmp_path / "src", config={"repl-diskless-sync": "no"}) as server:
        fill_kitchen_sink(server)
        expected = fingerprint(server)
        snap = backup_redis(local_repo, conninfo(server))
        assert not snap.details["rdb"]["diskless"]
        assert snap.details["rdb"]["bytes"] == snap.entries[0].size
        assert snap.details["consistency"]["writes_exact"] is False  # its BGSAVE reset the counter
    with restore_redis_fresh(local_repo, snap) as fresh:
        assert fingerprint(fresh) == expected
        assert verify_redis(conninfo(fresh), snap) == []


def test_backup_while_writes_go_on(redis_source, source, local_repo):
    c = redis_source.client()
    pipe = c.pipeline(transaction=False)
    for i in range(10_000):
        pipe.set(f"doc:{i}", b"x" * 200)
    pipe.execute()
    stop = threading.Event()

    def writer() -> None:
        w = redis_source.client()
        rng = random.Random(3)
        n = 0
        while not stop.is_set() or n < 200:
            i = rng.randrange(15_000)
            # every value unique: a value changed and changed back (which a sample cannot
            # tell from unchanged) never happens here
            w.set(f"doc:{i}", f"{n}:".encode() + b"y" * rng.randrange(100, 300))
            if n % 3 == 0:
                w.delete(f"doc:{rng.randrange(15_000)}")
            n += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        snap = backup_redis(local_repo, source, options=_sample_all())
    finally:
        stop.set()
        t.join(30)
    c.close()
    consistency = snap.details["consistency"]
    assert consistency["writes_during_backup"] > 0 and consistency["writes_exact"]
    assert consistency["sample_changed"] > 0  # those are not verified: the others are
    db0 = snap.details["databases"]["0"]
    lo, hi = db0["check"]["keys"]
    assert lo < hi  # a tolerance, since the server changed
    with restore_redis_fresh(local_repo, snap) as fresh:
        assert verify_redis(conninfo(fresh), snap) == []


def _sample_all():
    return RedisDumpOptions(sample_size=1000, seed=1)


def test_failing_source_leaves_no_snapshot(local_repo, tmp_path):
    with pytest.raises(SourceError, match="cannot reach Redis") as exc:
        backup_redis(local_repo, RedisConnInfo(port=1, connect_timeout=2))
    assert exc.value.transient
    with throwaway_redis(tmp_path / "locked", password="s3cret-pw", config=FAST_SYNC) as server:
        wrong = RedisConnInfo(host=server.host, port=server.port, password="wrong-pw")
        with pytest.raises(SourceError, match="refused the credentials") as exc:
            backup_redis(local_repo, wrong)
        assert not exc.value.transient and "wrong-pw" not in str(exc.value)
        assert "wrong-pw" not in repr(wrong)
        with pytest.raises(SourceError, match=r"NOAUTH|Authentication required") as exc:
            backup_redis(local_repo, RedisConnInfo(host=server.host, port=server.port))
        assert not exc.value.transient
        snap = backup_redis(local_repo, conninfo(server))  # the right password works
    assert local_repo.snapshot_ids() == [snap.backup_id]


def test_a_least_privileged_user_can_back_up(redis_source, kitchen_sink, local_repo):
    """The ACL of sources/redis/__init__.py is enough; without +sync the error says so."""
    admin = redis_source.client()
    admin.execute_command(
        "ACL", "SETUSER", "backup", "on", ">backup-pw", "~*", "+@read", "+@connection", "+info",
        "+sync", "+replconf", "+multi", "+exec", "+function|list",
    )  # fmt: skip
    admin.execute_command(
        "ACL", "SETUSER", "nosync", "on", ">backup-pw", "~*", "+@read", "+@connection", "+info",
        "+multi", "+exec",
    )  # fmt: skip
    try:
        user = replace(kitchen_sink, username="backup", password="backup-pw")
        snap = backup_redis(local_repo, user)
        assert snap.details["functions"] == ["scholarlib"]
        assert snap.details["consistency"]["writes_during_backup"] == 0
        with pytest.raises(SourceError, match=r"does not allow SYNC .*\+sync") as exc:
            backup_redis(local_repo, replace(user, username="nosync"))
        assert not exc.value.transient
    finally:
        admin.execute_command("ACL", "DELUSER", "backup", "nosync")
        admin.close()


def test_restore_refuses_other_snapshots(local_repo, target):
    from scholar_ops.vault.archiver import backup_stream

    snap = backup_stream(local_repo, io.BytesIO(b"not an rdb"), component="files", target="x")
    with pytest.raises(VaultError, match="not a Redis backup"):
        restore_redis_into(local_repo, snap, target)


def test_a_server_that_cannot_load_the_rdb_says_why(tmp_path):
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(b"REDIS0010" + b"\x00" * 100)
    with pytest.raises(RedisStartError, match=r"redis\.log") as exc, throwaway_redis(rdb=bad):
        pass
    assert "Address already in use" not in str(exc.value)
    assert bad.exists()  # the throwaway server's directory went, the caller's file stays
