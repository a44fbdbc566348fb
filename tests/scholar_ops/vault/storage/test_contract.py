"""The Storage contract (vault/storage/base.py), run against every backend.

The ``storage`` fixture is parametrized over the local filesystem and S3 (a moto
server, reached through a prefect-aws S3Bucket block and RetryingStorage).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scholar_ops.vault.errors import (
    ConfigError,
    ObjectNotFound,
    StorageError,
    TransientStorageError,
)
from scholar_ops.vault.storage import LocalStorage, ObjectInfo, Storage, open_storage
from scholar_ops.vault.storage.local import TEMP_PREFIX

PACK = "data/ab/ab" + "0" * 62


def listing(storage: Storage, prefix: str = "") -> dict[str, int]:
    return {info.name: info.size for info in storage.list(prefix)}


def test_location(storage: Storage) -> None:
    assert storage.location.startswith(("file:///", "s3://"))


def test_put_get_round_trip(storage: Storage) -> None:
    storage.put("config", b"hello")
    storage.put(PACK, bytes(range(256)))
    assert storage.get("config") == b"hello"
    assert storage.get(PACK) == bytes(range(256))


def test_empty_object(storage: Storage) -> None:
    storage.put("locks/empty", b"")
    assert storage.get("locks/empty") == b""
    assert storage.get("locks/empty", 0, 10) == b""
    assert storage.get("locks/empty", 5) == b""
    assert storage.stat("locks/empty") == ObjectInfo("locks/empty", 0)


def test_overwrite(storage: Storage) -> None:
    storage.put("config", b"first version, longer")
    storage.put("config", b"second")
    assert storage.get("config") == b"second"
    assert storage.stat("config").size == 6
    assert listing(storage) == {"config": 6}


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, b"0123456789"),
        (0, 4, b"0123"),  # start
        (3, 4, b"3456"),  # middle
        (6, None, b"6789"),  # to the end
        (6, 4, b"6789"),  # exactly to the end
        (8, 100, b"89"),  # past the end: what there is
        (9, 1, b"9"),
        (10, None, b""),  # starting at the end
        (10, 5, b""),
        (50, 5, b""),  # starting past the end
        (50, None, b""),
        (4, 0, b""),  # empty range
    ],
)
def test_ranged_get(storage: Storage, offset: int, length: int | None, expected: bytes) -> None:
    storage.put("snapshots/s1", b"0123456789")
    assert storage.get("snapshots/s1", offset, length) == expected


def test_negative_range_rejected(storage: Storage) -> None:
    storage.put("config", b"x")
    with pytest.raises(ValueError):
        storage.get("config", -1)
    with pytest.raises(ValueError):
        storage.get("config", 0, -1)


def test_list_with_prefixes(storage: Storage) -> None:
    objects = {
        "config": 3,
        "keys/k1": 10,
        "keys/k2": 11,
        "data/ab/ab01": 100,
        "data/ab/ab02": 101,
        "data/ac/ac01": 102,
        "data/b0/b001": 103,
        "index/i1": 7,
        "snapshots/s1": 0,
    }
    for name, size in objects.items():
        storage.put(name, b"x" * size)
    assert listing(storage) == objects
    assert listing(storage, "") == objects
    assert listing(storage, "keys/") == {"keys/k1": 10, "keys/k2": 11}
    assert listing(storage, "data/") == {k: v for k, v in objects.items() if k.startswith("data/")}
    assert listing(storage, "data/a") == {
        "data/ab/ab01": 100,
        "data/ab/ab02": 101,
        "data/ac/ac01": 102,
    }
    assert listing(storage, "data/ab/") == {"data/ab/ab01": 100, "data/ab/ab02": 101}
    assert listing(storage, "data/ab/ab02") == {"data/ab/ab02": 101}
    assert listing(storage, "c") == {"config": 3}
    assert listing(storage, "config") == {"config": 3}
    assert listing(storage, "locks/") == {}
    assert listing(storage, "data/zz/") == {}
    assert listing(storage, "nothing") == {}
    # list yields ObjectInfo values
    assert all(isinstance(info, ObjectInfo) for info in storage.list())


def test_list_on_empty_storage(storage: Storage) -> None:
    assert listing(storage) == {}
    assert listing(storage, "keys/") == {}


def test_stat(storage: Storage) -> None:
    storage.put("index/i1", b"x" * 1234)
    assert storage.stat("index/i1") == ObjectInfo("index/i1", 1234)


def test_delete(storage: Storage) -> None:
    storage.put("locks/l1", b"{}")
    storage.put("locks/l2", b"{}")
    storage.delete("locks/l1")
    assert listing(storage, "locks/") == {"locks/l2": 2}
    with pytest.raises(ObjectNotFound):
        storage.get("locks/l1")
    with pytest.raises(ObjectNotFound):
        storage.delete("locks/l1")


def test_missing_objects(storage: Storage) -> None:
    storage.put("data/ab/ab01", b"x")
    for name in ("config", "data/ab/ab02", "data/zz/zz01", "data/ab"):
        with pytest.raises(ObjectNotFound) as info:
            storage.get(name)
        assert info.value.object_name == name
        assert name in str(info.value)
        with pytest.raises(ObjectNotFound):
            storage.get(name, 1, 5)
        with pytest.raises(ObjectNotFound):
            storage.get(name, 0, 0)
        with pytest.raises(ObjectNotFound):
            storage.stat(name)
        with pytest.raises(ObjectNotFound):
            storage.delete(name)
    assert issubclass(ObjectNotFound, StorageError)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/config",
        "config/",
        "data//ab",
        "..",
        "../outside",
        "data/../../outside",
        "./config",
        "data/./ab",
        "has space",
        "back\\slash",
        "ünïcode",
        "data/" + TEMP_PREFIX + "abc",
        "nul\x00byte",
    ],
)
def test_invalid_names_rejected(storage: Storage, name: str) -> None:
    with pytest.raises(ValueError):
        storage.put(name, b"x")
    with pytest.raises(ValueError):
        storage.get(name)
    with pytest.raises(ValueError):
        storage.stat(name)
    with pytest.raises(ValueError):
        storage.delete(name)


def test_large_object_round_trip(storage: Storage) -> None:
    data = os.urandom(20 << 20)
    storage.put(PACK, data)
    assert storage.stat(PACK).size == len(data)
    assert storage.get(PACK) == data
    assert storage.get(PACK, (20 << 20) - 100) == data[-100:]
    assert storage.get(PACK, 12345, 1 << 20) == data[12345 : 12345 + (1 << 20)]


def test_concurrent_puts_to_different_names(storage: Storage) -> None:
    def put(i: int) -> None:
        storage.put(f"data/{i % 4:02x}/{i:04x}", bytes([i]) * (1000 + i))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, range(40)))
    got = listing(storage, "data/")
    assert got == {f"data/{i % 4:02x}/{i:04x}": 1000 + i for i in range(40)}
    for i in (0, 17, 39):
        assert storage.get(f"data/{i % 4:02x}/{i:04x}") == bytes([i]) * (1000 + i)


def test_readers_never_see_partial_overwrites(storage: Storage) -> None:
    versions = [b"a" * (256 << 10), b"b" * (300 << 10)]
    storage.put("config", versions[0])
    stop = threading.Event()
    seen: set[bytes] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                data = storage.get("config")
                assert data in versions, f"partial read of {len(data)} bytes"
                seen.add(data[:1])
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            storage.put("config", versions[i % 2])
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert storage.get("config") == versions[1]


# -- local filesystem specifics ---------------------------------------------


def test_local_list_skips_temp_files(local_storage: LocalStorage) -> None:
    local_storage.put("data/ab/ab01", b"x" * 5)
    root = local_storage.root
    (root / "data" / "ab" / f"{TEMP_PREFIX}leftover").write_bytes(b"partial")
    (root / f"{TEMP_PREFIX}config").write_bytes(b"partial")
    (root / "data" / f"{TEMP_PREFIX}dir").mkdir()
    (root / "data" / f"{TEMP_PREFIX}dir" / "inner").write_bytes(b"partial")
    assert listing(local_storage) == {"data/ab/ab01": 5}
    assert listing(local_storage, "data/ab/") == {"data/ab/ab01": 5}
    assert listing(local_storage, "data/ab/.tmp") == {}


def test_local_put_leaves_no_temp_files(local_storage: LocalStorage) -> None:
    for i in range(5):
        local_storage.put("index/i1", b"v%d" % i)
    names = sorted(p.name for p in (local_storage.root / "index").iterdir())
    assert names == ["i1"]


def test_local_failed_put_keeps_old_object_and_cleans_up(
    local_storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_storage.put("config", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError) as info:
        local_storage.put("config", b"new")
    monkeypatch.undo()
    assert not isinstance(info.value, ObjectNotFound)
    assert "No space left on device" in str(info.value)
    assert str(local_storage.root) in str(info.value)
    assert local_storage.get("config") == b"old"
    assert [p.name for p in local_storage.root.iterdir()] == ["config"]


def test_local_layout_and_location(local_storage: LocalStorage, tmp_path: Path) -> None:
    assert not (tmp_path / "repo").exists()  # created on the first put
    assert local_storage.location == f"file://{tmp_path / 'repo'}"
    local_storage.put("data/ab/ab01", b"pack")
    assert (tmp_path / "repo" / "data" / "ab" / "ab01").read_bytes() == b"pack"


def test_local_relative_root_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = LocalStorage("repo")
    assert storage.location == f"file://{tmp_path / 'repo'}"
    storage.put("config", b"x")
    monkeypatch.chdir("/")
    assert storage.get("config") == b"x"


def test_local_directory_is_not_an_object(local_storage: LocalStorage) -> None:
    local_storage.put("data/ab/ab01", b"x")
    with pytest.raises(ObjectNotFound):
        local_storage.stat("data/ab")
    with pytest.raises(ObjectNotFound):
        local_storage.delete("data/ab")
    with pytest.raises(ObjectNotFound):
        local_storage.get("data/ab/ab01/deeper")


def test_local_os_errors_are_storage_errors(local_storage: LocalStorage) -> None:
    local_storage.put("config", b"x")
    # "config" is a file, so it cannot be a directory holding "config/inner".
    with pytest.raises(StorageError) as info:
        local_storage.put("config/inner", b"x")
    assert not isinstance(info.value, ObjectNotFound | TransientStorageError)
    assert str(local_storage.root / "config") in str(info.value)
    assert "EEXIST" in str(info.value)


# -- open_storage -------------------------------------------------------------


def test_open_storage_local(tmp_path: Path) -> None:
    for url in (str(tmp_path), f"file://{tmp_path}", f"file://localhost{tmp_path}", tmp_path):
        storage = open_storage(url)
        assert isinstance(storage, LocalStorage)
        assert storage.root == tmp_path
    assert isinstance(open_storage(f"file://{tmp_path}/with%20space"), LocalStorage)


@pytest.mark.parametrize(
    "url", ["s3://bucket/prefix", "S3://bucket", "gs://bucket", "file://otherhost/x", ""]
)
def test_open_storage_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        open_storage(url)


def test_open_storage_s3_points_to_the_block() -> None:
    with pytest.raises(ConfigError, match="S3Bucket"):
        open_storage("s3://bucket/prefix")
