"""Restore verification judges data, not the approximate index's answers (issue 12).

Three collections of 4000 x 384 records (cosine, l2, ip) drawn from a standard normal
distribution, where HNSW (ef_search 200) is approximate: its top 10 differs from the
exact top 10 for some records. A restore verifies (exact digests, every record, the
index's recall of exact neighbours), and a changed embedding, document or metadata in
the restored copy is caught, as one line naming the count and the record.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scholar_ops.sources.chroma.conninfo import ChromaSource, release_embedded
from scholar_ops.sources.chroma.dump import backup_chroma
from scholar_ops.sources.chroma.restore import (
    ChromaRestoreResult,
    restore_chroma,
    restore_chroma_physical,
    verify_chroma,
    verify_chroma_physical,
)
from scholar_ops.sources.chroma.verify import (
    CollectionDigest,
    ExactNeighbours,
    _distances,
    cosine_close,
    required_recall,
)
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import ConfigError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.snapshot import Snapshot
from scholar_ops.vault.storage import LocalStorage

DIM = 384
N = 4000
SPACES = {"papers_cosine": "cosine", "chunks_l2": "l2", "notes_ip": "ip"}


@dataclass
class Restored:
    repo: Repository
    snap: Snapshot
    source: ChromaSource
    dest: ChromaSource
    result: ChromaRestoreResult
    vectors: dict[str, np.ndarray]  # name -> what was added, in id order


def _ids(name: str, n: int = N) -> list[str]:
    return [f"{name}-{i:05d}" for i in range(n)]


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    root = tmp_path_factory.mktemp("chroma-verify")
    repo = Repository.init(
        LocalStorage(root / "repo"), MasterKey.from_string("chroma-verify-master-key-000")
    )
    source = ChromaSource.embedded(root / "source")
    client = source.client()
    rng = np.random.default_rng(12)
    vectors = {}
    for name, space in SPACES.items():
        config: Any = {"hnsw": {"space": space, "ef_search": 200}}
        col = client.create_collection(name, embedding_function=None, configuration=config)
        x = rng.standard_normal((N, DIM)).astype(np.float32)
        vectors[name] = x
        ids = _ids(name)
        for start in range(0, N, 1000):
            part = range(start, start + 1000)
            docs: Any = [None if i % 50 == 3 else f"Résumé {i} ✓ {space}" for i in part]
            metas: Any = [None if i % 70 == 1 else {"i": i, "w": i / 7} for i in part]
            col.add(
                ids=ids[start : start + 1000],
                embeddings=x[start : start + 1000],
                documents=docs,
                metadatas=metas,
            )
    snap = backup_chroma(repo, source, backup_type="full")
    dest = ChromaSource.embedded(root / "restored")
    result = restore_chroma(repo, snap, dest)
    yield Restored(repo, snap, source, dest, result, vectors)
    release_embedded(root / "source")
    release_embedded(root / "restored")


def _col(r: Restored, name: str) -> Any:
    return r.dest.client().get_collection(name, embedding_function=None)


def test_a_restore_of_approximate_indexes_verifies(restored: Restored) -> None:
    r = restored.result
    assert r.ok, r.summary()
    assert r.differences == 0 and r.summary().endswith(": verified")
    assert r.counts == {name: [N, N] for name in SPACES}
    for name in SPACES:
        rec = r.recall[name]
        assert rec["k"] == 10 and rec["queries"] == 50
        assert rec["mean"] >= 0.9, (name, rec)
    # The data is where HNSW is approximate: for some sample records the restored
    # index's top 10 is not the exact top 10. Equality of neighbour lists (the old
    # rule, which compared index answers) cannot be the test of a restore.
    identical = sum(rec["identical"] for rec in r.recall.values())
    assert identical < sum(rec["queries"] for rec in r.recall.values()), r.recall
    assert any(rec["mean"] < 1.0 for rec in r.recall.values()), r.recall
    # The backup measured the source's index the same way: approximate too.
    source = [c["index_recall"] for c in restored.snap.details["collections"]]
    assert [s["queries"] for s in source] == [50, 50, 50]
    assert any(s["mean"] < 1.0 for s in source), source
    for name in SPACES:  # 0.9, or the source's recall minus 0.1 when that is lower
        assert r.recall[name]["required"] <= 0.9

    # Requiring every exact neighbour (recall 1.0, nothing measured at backup time)
    # would fail this very restore.
    old = copy.deepcopy(restored.snap)
    for c in old.details["collections"]:
        c.pop("index_recall")
    strict = verify_chroma(restored.repo, old, restored.dest, min_recall=1.0)
    line = strict.summary()
    assert not strict.ok and "exact 10 nearest neighbours of 50 sample records, below" in line
    assert "the 100% required (worst " in line and "\n" not in line


def test_the_required_recall() -> None:
    assert required_recall(0.9, None) == 0.9
    assert required_recall(0.9, {"mean": 1.0}) == 0.9
    assert required_recall(0.9, {"mean": 0.95}) == pytest.approx(0.85)
    assert required_recall(0.9, {"mean": 0.53}) == pytest.approx(0.43)
    assert required_recall(0.9, {"mean": 0.05}) == 0.0


def test_digests_are_exact_and_order_independent(restored: Restored) -> None:
    details = {c["name"]: c for c in restored.snap.details["collections"]}
    client = restored.source.client()
    for name in ("chunks_l2", "notes_ip"):
        got: Any = client.get_collection(name, embedding_function=None).get(
            include=["embeddings", "documents", "metadatas", "uris"], limit=N
        )
        backwards = CollectionDigest()
        for i in reversed(range(len(got["ids"]))):
            backwards.add(
                got["ids"][i],
                got["documents"][i],
                got["metadatas"][i] or None,
                got["uris"][i],
                np.asarray(got["embeddings"][i], dtype="<f4").tobytes(),
            )
        assert backwards.hexdigests() == details[name]["digests"]
        # ... and the embeddings are the float32 values that were added.
        np.testing.assert_array_equal(
            np.asarray(got["embeddings"], dtype=np.float32), restored.vectors[name]
        )


def test_cosine_embeddings_come_back_within_float32_precision(restored: Restored) -> None:
    # Chroma keeps cosine vectors normalized and returns norm x unit vector: not bit
    # for bit what was added (which is why that one comparison has a tolerance).
    got = _col(restored, "papers_cosine").get(
        ids=_ids("papers_cosine")[:200], include=["embeddings"]
    )
    back = np.asarray(got["embeddings"], dtype=np.float32)
    added = restored.vectors["papers_cosine"][[int(i.rsplit("-", 1)[1]) for i in got["ids"]]]
    assert not np.array_equal(back, added)
    assert all(cosine_close(b, a) for b, a in zip(back, added, strict=True))
    assert not cosine_close(added[0] + 1e-3 * added[1], added[0])


def test_a_changed_embedding_in_the_restored_copy_is_caught(restored: Restored) -> None:
    for name in ("chunks_l2", "papers_cosine"):
        col = _col(restored, name)
        rid = _ids(name)[1234]
        original = restored.vectors[name][1234]
        changed = original.copy()
        changed[7] += 0.05
        col.update(ids=[rid], embeddings=changed[None, :])
        try:
            result = verify_chroma(restored.repo, restored.snap, restored.dest, collections=[name])
        finally:
            col.update(ids=[rid], embeddings=original[None, :])
        line = result.summary()
        assert not result.ok and result.differences == 1, line
        assert (
            "1 difference:" in line
            and repr(rid) in line
            and "embedding differs from the backup" in line
        )
        assert "\n" not in line and len(line) < 300, line
    # Put back: verified again.
    assert verify_chroma(restored.repo, restored.snap, restored.dest).ok


def test_a_changed_document_and_metadata_are_caught(restored: Restored) -> None:
    col = _col(restored, "notes_ip")
    ids = _ids("notes_ip")
    before = col.get(ids=[ids[10], ids[3000]], include=["documents", "metadatas"])
    vectors = restored.vectors["notes_ip"]
    # A document changes only with its embedding (no embedding function): the same one.
    col.update(ids=[ids[10]], documents=["Résumé 10 ✓ ip, edited"], embeddings=vectors[10:11])
    col.update(ids=[ids[3000]], metadatas=[{"i": 3000, "w": 1.5}])
    try:
        result = verify_chroma(
            restored.repo, restored.snap, restored.dest, collections=["notes_ip"]
        )
    finally:
        col.update(
            ids=before["ids"],
            documents=before["documents"],
            metadatas=before["metadatas"],
            embeddings=vectors[[int(i.rsplit("-", 1)[1]) for i in before["ids"]]],
        )
    line = result.summary()
    assert result.differences == 2 and line.count("collection notes_ip: record") == 2, line
    assert f"record {ids[10]!r}: document differs from the backup" in line
    assert f"record {ids[3000]!r}: metadata differs from the backup" in line
    assert "\n" not in line


def test_many_differences_are_one_short_line(restored: Restored) -> None:
    col = _col(restored, "chunks_l2")
    ids = _ids("chunks_l2")[100:130]
    before = col.get(ids=ids, include=["metadatas"])
    col.update(ids=ids, metadatas=[{"i": -1}] * len(ids))
    try:
        result = verify_chroma(
            restored.repo, restored.snap, restored.dest, collections=["chunks_l2"]
        )
    finally:
        col.update(ids=before["ids"], metadatas=before["metadatas"])
    line = result.summary()
    assert result.differences == 30 and len(result.mismatches) == 20
    assert ": 30 differences: " in line and line.endswith("(and 27 more)"), line
    assert line.count("record ") == 3 and len(line) < 400 and "\n" not in line


def test_a_snapshot_without_digests_still_verifies_record_by_record(restored: Restored) -> None:
    old = copy.deepcopy(restored.snap)
    for c in old.details["collections"]:
        c.pop("digests"), c.pop("digest")
    assert verify_chroma(restored.repo, old, restored.dest, collections=["notes_ip"]).ok
    col = _col(restored, "notes_ip")
    rid = _ids("notes_ip")[7]
    doc = col.get(ids=[rid], include=["documents"])["documents"]
    vec = restored.vectors["notes_ip"][7:8]
    col.update(ids=[rid], documents=["changed"], embeddings=vec)
    try:
        result = verify_chroma(restored.repo, old, restored.dest, collections=["notes_ip"])
    finally:
        col.update(ids=[rid], documents=doc, embeddings=vec)
    assert result.differences == 1 and repr(rid) in result.summary()


def test_a_stream_that_differs_from_its_digests_is_caught(restored: Restored) -> None:
    bad = copy.deepcopy(restored.snap)
    bad.details["collections"][0]["digests"]["documents"] = "00" * 32
    name = bad.details["collections"][0]["name"]
    result = verify_chroma(restored.repo, bad, restored.dest, collections=[name])
    assert result.differences == 1
    assert f"collection {name}: the documents of the backup stream differ" in result.summary()


def test_bad_verification_options(restored: Restored) -> None:
    with pytest.raises(ConfigError, match="min_recall"):
        verify_chroma(restored.repo, restored.snap, restored.dest, min_recall=90)
    with pytest.raises(ConfigError, match="samples"):
        verify_chroma(restored.repo, restored.snap, restored.dest, samples=-1)


def test_physical_copy_gets_the_same_data_check(restored: Restored, tmp_path: Path) -> None:
    store = tmp_path / "small"
    col = (
        ChromaSource.embedded(store)
        .client()
        .create_collection(
            "small_l2", embedding_function=None, configuration={"hnsw": {"space": "l2"}}
        )
    )
    x = restored.vectors["chunks_l2"][:300]
    col.add(ids=_ids("small", 300), embeddings=x, documents=[f"d{i}" for i in range(300)])
    release_embedded(store)
    snap = backup_chroma(restored.repo, ChromaSource.embedded(store), physical=True)
    (info,) = snap.details["collections"]
    assert info["records"] == 300 and info["space"] == "l2" and len(info["digests"]) == 5

    dest = tmp_path / "physical"
    result = restore_chroma_physical(restored.repo, snap, dest)
    assert result.ok, result.summary()
    assert result.recall["small_l2"]["queries"] == 50
    changed = x[42].copy()
    changed[0] += 1.0
    ChromaSource.embedded(dest).client().get_collection("small_l2", embedding_function=None).update(
        ids=[_ids("small", 300)[42]], embeddings=changed[None, :]
    )
    release_embedded(dest)
    bad = verify_chroma_physical(snap, dest)
    assert bad.differences == 1, bad.summary()
    assert "small_l2: the embeddings read back" in bad.summary()


# -- exact neighbours --------------------------------------------------------------------


@pytest.mark.parametrize("space", ["l2", "ip", "cosine"])
def test_exact_neighbours_match_a_full_sort_over_batches(space: str) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 16)).astype(np.float32)
    ids = [f"r{i}" for i in range(500)]
    q = x[[3, 77]]
    full = _distances(space, q, x)
    exact = ExactNeighbours(space, q, 10, [[], []])
    for start in range(0, 500, 64):  # batches smaller and not a multiple of k
        exact.add(ids[start : start + 64], x[start : start + 64])
    for qi in range(2):
        assert exact.exact_ids(qi) == [ids[i] for i in np.argsort(full[qi], kind="stable")[:10]]
    if space == "l2":
        ref = ((q[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1)
        np.testing.assert_allclose(full, ref, rtol=1e-9, atol=1e-9)


def test_ties_in_exact_distance_are_not_misses() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x[20:30] = x[10]  # eleven identical vectors: any ten of them is an exact top 10
    ids = [f"r{i}" for i in range(40)]
    q = x[10:11]
    index_answer = [f"r{i}" for i in range(20, 30)]  # another ten of the eleven
    exact = ExactNeighbours("l2", q, 10, [index_answer])
    exact.add(ids, x)
    assert exact.recall(0) == 1.0
    wrong = ExactNeighbours("l2", q, 10, [[*index_answer[:9], "r0"]])
    wrong.add(ids, x)
    assert wrong.recall(0) == 0.9
