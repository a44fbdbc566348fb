"""Chroma backups: logical round trips (embedded and server), restore modes, churn, physical copies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scholar_ops.sources.chroma.conninfo import ChromaSource
from scholar_ops.sources.chroma.dump import backup_chroma
from scholar_ops.sources.chroma.restore import (
    restore_chroma,
    restore_chroma_physical,
    verify_chroma_physical,
)
from scholar_ops.sources.chroma.verify import sample_positions
from scholar_ops.sources.process import free_port
from scholar_ops.vault.archiver import BackupWriter
from scholar_ops.vault.errors import ConfigError, SourceError, TargetNotEmpty, VaultError
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import Restorer
from tests.scholar_ops.sources.chroma.conftest import (
    COLLECTIONS,
    DIM,
    Seeded,
    dump_collection,
    embeddings,
    records,
)

WHERE = {"$and": [{"year": {"$gte": 2012}}, {"lang": {"$in": ["fr", "日本語"]}}]}


def assert_same_store(src: Any, dst: Any, names: list[str], *, exact_cosine: bool) -> None:
    """Same records (documents, metadata, embeddings), configuration, metadata and answers."""
    rng = np.random.default_rng(99)
    queries = embeddings(rng, 3)
    for name in names:
        a, b = dump_collection(src, name), dump_collection(dst, name)
        assert a.keys() == b.keys(), name
        space = COLLECTIONS[name][0]
        for rid, (doc, meta, uri, vec) in a.items():
            assert b[rid][:3] == (doc, meta, uri), rid
            if space != "cosine" or exact_cosine:
                assert np.array_equal(b[rid][3], vec), rid
            else:
                # Chroma hands out a cosine collection's vectors rebuilt from its
                # normalized copy: they come back within an ulp of what was added.
                np.testing.assert_allclose(b[rid][3], vec, rtol=2e-7, atol=1e-7)
        ca = src.get_collection(name, embedding_function=None)
        cb = dst.get_collection(name, embedding_function=None)
        assert cb.metadata == ca.metadata
        assert cb.configuration_json["hnsw"] == ca.configuration_json["hnsw"]
        # Nearest neighbours, with and without a metadata filter, are the same.
        for with_where in (None, WHERE):
            ra = ca.query(query_embeddings=queries, n_results=10, where=with_where)
            rb = cb.query(query_embeddings=queries, n_results=10, where=with_where)
            assert rb["ids"] == ra["ids"], (name, with_where)
        got_a = sorted(ca.get(where=WHERE, include=[])["ids"])
        assert got_a and sorted(cb.get(where=WHERE, include=[])["ids"]) == got_a


def test_embedded_round_trip(seeded: Seeded, repo: Repository, chroma_dir: Path) -> None:
    snap = backup_chroma(repo, seeded.source, backup_type="full")
    assert snap.component == "chroma" and snap.target == "store"
    assert sorted(e.name for e in snap.entries) == sorted(
        f"collections/{n}.jsonl" for n in COLLECTIONS
    )
    by_name = {c["name"]: c for c in snap.details["collections"]}
    for name, (space, n) in COLLECTIONS.items():
        c = by_name[name]
        assert (c["records"], c["dimension"], c["space"]) == (n, DIM, space)
        assert c["digest"] == "blake2b-256-sum/1" and len(c["digests"]["embeddings"]) == 64
        assert set(c["digests"]) == {"ids", "documents", "metadatas", "uris", "embeddings"}
    assert snap.details["records"] == sum(n for _, n in COLLECTIONS.values())
    assert not snap.details["warnings"]

    # The stream: a header line, then records in Chroma's order with exact float32 vectors.
    entry = next(e for e in snap.entries if e.name == "collections/chunks_l2.jsonl")
    text = b"".join(Restorer(repo).iter_entry(snap, entry)).decode()
    lines = text.splitlines()
    assert len(lines) == 1 + 600 and '"format":"scholar-ops-chroma-collection/1"' in lines[0]
    assert "Résumé" in text and "日本語" in text  # unicode kept as is

    result = restore_chroma(repo, snap, ChromaSource.embedded(chroma_dir), batch_size=250)
    assert result.ok, result.mismatches
    assert result.counts == {n: [c, c] for n, (_, c) in COLLECTIONS.items()}
    assert {n: r["queries"] for n, r in result.recall.items()} == {n: 50 for n in COLLECTIONS}
    assert result.differences == 0 and result.summary().endswith(": verified")
    assert sorted(result.collections) == sorted(COLLECTIONS)
    assert_same_store(
        seeded.source.client(),
        ChromaSource.embedded(chroma_dir).client(),
        list(COLLECTIONS),
        exact_cosine=False,
    )


def test_embedded_to_server_and_back(
    seeded: Seeded, repo: Repository, server_source: ChromaSource, chroma_dir: Path
) -> None:
    snap = backup_chroma(repo, seeded.source, backup_type="full")
    to_server = restore_chroma(repo, snap, server_source)
    assert to_server.ok, to_server.mismatches
    assert_same_store(
        seeded.source.client(), server_source.client(), list(COLLECTIONS), exact_cosine=False
    )

    from_server = backup_chroma(repo, server_source, collections=["chunks_l2", "notes_ip"])
    assert from_server.details["server_version"] and not from_server.details["warnings"]
    assert [c["name"] for c in from_server.details["collections"]] == ["chunks_l2", "notes_ip"]
    # The same records in the same order: only the chunk holding each header (new
    # collection ids; up to 256 KiB per collection) is new.
    assert from_server.stats["bytes_new"] < 0.10 * snap.stats["bytes_new"]
    back = restore_chroma(repo, from_server, ChromaSource.embedded(chroma_dir))
    assert back.ok, back.mismatches
    assert_same_store(
        seeded.source.client(),
        ChromaSource.embedded(chroma_dir).client(),
        ["chunks_l2", "notes_ip"],
        exact_cosine=True,
    )


def test_existing_collections_fail_skip_replace(
    seeded: Seeded, repo: Repository, chroma_dir: Path
) -> None:
    snap = backup_chroma(repo, seeded.source)
    dest = ChromaSource.embedded(chroma_dir)
    client = dest.client()
    rng = np.random.default_rng(3)
    client.create_collection("chunks_l2", embedding_function=None).add(
        ids=["keep-1", "keep-2", "keep-3"], embeddings=embeddings(rng, 3)
    )

    with pytest.raises(TargetNotEmpty, match="chunks_l2"):
        restore_chroma(repo, snap, dest)
    # Refused before writing anything.
    assert [c.name for c in client.list_collections()] == ["chunks_l2"]
    assert client.get_collection("chunks_l2", embedding_function=None).count() == 3

    skipped = restore_chroma(repo, snap, dest, existing="skip")
    assert skipped.ok and skipped.skipped == ["chunks_l2"]
    assert client.get_collection("chunks_l2", embedding_function=None).count() == 3
    assert sorted(c.name for c in client.list_collections()) == sorted(COLLECTIONS)

    replaced = restore_chroma(repo, snap, dest, existing="replace", collections=["chunks_l2"])
    assert replaced.ok and replaced.replaced == ["chunks_l2"]
    assert client.get_collection("chunks_l2", embedding_function=None).count() == 600

    with pytest.raises(VaultError, match="no collection nope"):
        restore_chroma(repo, snap, dest, collections=["nope"], existing="replace")


def test_second_backup_after_churn_stores_little(
    repo: Repository, chroma_dir: Path, tmp_path: Path
) -> None:
    source = ChromaSource.embedded(tmp_path / "live")
    client = source.client()
    rng = np.random.default_rng(11)
    col = client.create_collection(
        "aischolar_chunks", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    n = 4000
    for part in range(0, n, 1000):
        col.add(**records(rng, f"chunk{part}", 1000))
    full = backup_chroma(repo, source, backup_type="full")

    unchanged = backup_chroma(repo, source)
    assert unchanged.stats["chunks_new"] == 0  # same bytes: nothing stored but the manifest

    col.add(**records(rng, "new", n // 100))  # 1% new records
    some = col.get(limit=5, offset=1234, include=[])["ids"]
    col.update(
        ids=some,
        embeddings=embeddings(rng, 5),
        documents=[f"revised ✎ {i}" for i in range(5)],
        metadatas=[{"year": 2026, "lang": "fr"}] * 5,
    )
    inc = backup_chroma(repo, source)
    ratio = inc.stats["bytes_stored"] / full.stats["bytes_stored"]
    print(
        f"\nchroma churn: full {full.stats['bytes_stored']} B, after +1% and 5 updates "
        f"{inc.stats['bytes_stored']} B ({ratio:.1%})"
    )
    assert ratio < 0.08, ratio

    result = restore_chroma(repo, inc, ChromaSource.embedded(chroma_dir))
    assert result.ok, result.mismatches
    assert result.counts["aischolar_chunks"] == [n + n // 100] * 2
    restored = ChromaSource.embedded(chroma_dir).client()
    got = restored.get_collection("aischolar_chunks", embedding_function=None).get(
        ids=some, include=["documents"]
    )
    assert sorted(got["documents"] or []) == sorted(f"revised ✎ {i}" for i in range(5))


def test_physical_copy_round_trip(seeded: Seeded, repo: Repository, chroma_dir: Path) -> None:
    snap = backup_chroma(repo, seeded.source, physical=True, backup_type="full")
    d = snap.details
    assert d["kind"] == "physical" and "same Chroma version" in d["note"]
    assert {c["name"]: c["records"] for c in d["collections"]} == {
        n: c for n, (_, c) in COLLECTIONS.items()
    }
    names = {e.name for e in snap.entries}
    assert "physical/chroma.sqlite3" in names and len(names) > 1  # + segment files
    assert all(e.kind == "file" and e.mode and e.mtime_ns for e in snap.entries)

    with pytest.raises(VaultError, match="physical"):
        restore_chroma(repo, snap, ChromaSource.embedded(chroma_dir))
    written = restore_chroma_physical(repo, snap, chroma_dir, verify=False)
    assert written.ok and written.records == sum(c for _, c in COLLECTIONS.values())
    with pytest.raises(TargetNotEmpty):
        restore_chroma_physical(repo, snap, chroma_dir)
    for e in snap.entries:
        st = (chroma_dir / e.name.removeprefix("physical/")).stat()
        assert (st.st_size, st.st_mtime_ns) == (e.size, e.mtime_ns)
    result = verify_chroma_physical(snap, chroma_dir)  # opens it with Chroma
    assert result.ok, result.mismatches
    # The data check: digests recorded at backup time, read back from the copy.
    assert all(len(c["digests"]["embeddings"]) == 64 for c in d["collections"])
    assert {n: r["queries"] for n, r in result.recall.items()} == {n: 50 for n in COLLECTIONS}

    restored = ChromaSource.embedded(chroma_dir).client()
    assert_same_store(seeded.source.client(), restored, list(COLLECTIONS), exact_cosine=True)


def test_physical_copy_refuses_a_directory_written_during_the_copy(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ChromaSource.embedded(tmp_path / "busy")
    col = source.client().create_collection("busy_col", embedding_function=None)
    rng = np.random.default_rng(5)
    col.add(ids=[f"r{i}" for i in range(50)], embeddings=embeddings(rng, 50))
    add_stream = BackupWriter.add_stream

    def writing_meanwhile(self: BackupWriter, name: str, stream: Any, **meta: Any) -> Any:
        entry = add_stream(self, name, stream, **meta)
        col.add(ids=[f"late-{name}"], embeddings=embeddings(rng, 1))
        return entry

    monkeypatch.setattr(BackupWriter, "add_stream", writing_meanwhile)
    with pytest.raises(SourceError, match="changed during the physical copy") as err:
        backup_chroma(repo, source, physical=True)
    assert err.value.transient
    assert repo.snapshot_ids() == []  # nothing committed


def test_bad_sources(repo: Repository, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ChromaSource()
    with pytest.raises(ConfigError):
        ChromaSource(path="/x", host="h")
    with pytest.raises(ConfigError, match="physical"):
        backup_chroma(repo, ChromaSource.server("127.0.0.1", 8000), physical=True)
    missing = tmp_path / "nothing-here"
    with pytest.raises(SourceError, match=r"no Chroma database"):
        backup_chroma(repo, ChromaSource.embedded(missing))
    assert not missing.exists()  # a backup never creates an empty store
    with pytest.raises(SourceError) as err:
        ChromaSource.server("127.0.0.1", free_port()).client()
    assert err.value.transient


def test_secrets_stay_out_of_repr() -> None:
    src = ChromaSource.server(
        "chroma.internal", 8443, ssl=True, token="s3cr3t-token", headers={"X-Api-Key": "k3y"}
    )
    for text in (repr(src), src.describe(), str(src)):
        assert "s3cr3t" not in text and "k3y" not in text
    assert src.describe() == "chroma https://chroma.internal:8443"
    assert src.request_headers() == {"X-Api-Key": "k3y", "Authorization": "Bearer s3cr3t-token"}
    raw = ChromaSource.server("h", token="t", token_header="X-Chroma-Token")
    assert raw.request_headers() == {"X-Chroma-Token": "t"}


def test_sample_positions_spread_over_the_collection() -> None:
    assert sample_positions(0, 5) == []
    assert sample_positions(3, 5) == [0, 1, 2]
    assert sample_positions(1000, 5) == [100, 300, 500, 700, 900]


def test_embedding_function_reference_is_kept_when_it_can_be(
    repo: Repository, tmp_path: Path, chroma_dir: Path
) -> None:
    from chromadb.api.types import EmbeddingFunction
    from chromadb.utils.embedding_functions import known_embedding_functions

    class OnlyHere(EmbeddingFunction[Any]):
        def __init__(self, dim: int = 8) -> None:
            self.dim = dim

        def __call__(self, input: Any) -> Any:
            raise AssertionError("a backup or restore never embeds")

        @staticmethod
        def name() -> str:
            return "scholar_ops_test_only_here"

        def get_config(self) -> dict[str, Any]:
            return {"dim": self.dim}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> OnlyHere:
            return OnlyHere(config["dim"])

    source = ChromaSource.embedded(tmp_path / "ef")
    client = source.client()
    rng = np.random.default_rng(2)
    # Chroma's default embedding function is recorded, never called (embeddings are given).
    client.create_collection("with_default_ef").add(ids=["a", "b"], embeddings=embeddings(rng, 2))
    client.create_collection("with_custom_ef", embedding_function=OnlyHere()).add(
        ids=["c"], embeddings=embeddings(rng, 1)
    )
    snap = backup_chroma(repo, source)
    known_embedding_functions.pop(OnlyHere.name(), None)  # as in another process

    result = restore_chroma(repo, snap, ChromaSource.embedded(chroma_dir))
    assert result.ok, result.mismatches
    restored = ChromaSource.embedded(chroma_dir).client()
    cfg = restored.get_collection("with_default_ef").configuration_json
    assert cfg["embedding_function"]["name"] == "default"
    assert len(result.warnings) == 1 and "scholar_ops_test_only_here" in result.warnings[0]
