"""`scholar-ops setup` run again, from elsewhere, with other values: it never locks the
operator out, and never replaces what is saved without --force."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from scholar_ops.cli import main

KEY = "setup-test-master-key-0123456789abcdef"
OTHER_KEY = "another-master-key-0123456789abcdef"


@pytest.fixture
def env(prefect_harness, tmp_path, monkeypatch):
    suffix = uuid.uuid4().hex[:6]
    for var in ("PGDATABASE", "PGPASSWORD", "REDIS_HOST", "REDIS_PORT", "REDISCLI_AUTH",
                "REDIS_PASSWORD", "CHROMA_TOKEN", "SCHOLAR_OPS_MASTER_KEY",
                "SCHOLAR_OPS_MASTER_KEY_FILE", "SCHOLAR_OPS_REPOSITORY_PATH"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCHOLAR_OPS_REPOSITORY", f"repo-{suffix}")
    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    (tmp_path / "uploads").mkdir()
    return {
        "suffix": suffix,
        "secret": f"key-{suffix}",
        "repo": str(tmp_path / "repo"),
        "uploads": str(tmp_path / "uploads"),
        "tmp": tmp_path,
    }


def _setup(env, *extra: str) -> int:
    return main([
        "setup", "--repo-path", env["repo"], "--master-key-secret", env["secret"],
        "--files", f"up-{env['suffix']}={env['uploads']}", *extra,
    ])  # fmt: skip


def _secret(name: str) -> str:
    from prefect.blocks.system import Secret

    secret: Any = Secret.load(name, _sync=True)  # type: ignore[call-arg]
    return str(secret.value.get_secret_value())


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_rerun_from_another_directory_without_the_key_changes_nothing(env, capsys, monkeypatch):
    assert _setup(env) == 0  # a new repository: a new key, written to the key file
    out = capsys.readouterr().out
    assert "generated a new master key" in out and "(created," in out
    key = _secret(env["secret"])
    assert (Path.cwd() / "scholar-ops-master.key").read_text().strip() == key

    # The reported case: again, from another directory, without a key file.
    elsewhere = env["tmp"] / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _setup(env) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.endswith("[unchanged]") for line in out), out
    assert "(opened," in out[0]
    assert not (elsewhere / "scholar-ops-master.key").exists()  # no new key was made
    assert _secret(env["secret"]) == key
    assert main(["check"]) == 0  # still opens


def test_a_wrong_or_missing_key_exits_2_and_changes_nothing(env, capsys, monkeypatch):
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    assert _setup(env) == 0
    capsys.readouterr()
    objects = sorted(p.name for p in Path(env["repo"]).rglob("*"))

    # Another key given: it does not open the repository.
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", OTHER_KEY)
    assert _setup(env) == 2
    line = _err(capsys)
    assert "does not open the repository" in line and "nothing was changed" in line
    assert _secret(env["secret"]) == KEY

    # No key at all, and a Secret block name that holds none (a fresh Prefect, say).
    monkeypatch.delenv("SCHOLAR_OPS_MASTER_KEY")
    assert _setup(env, "--master-key-secret", f"missing-{env['suffix']}") == 2
    line = _err(capsys)
    assert "already holds a repository" in line and "nothing was changed" in line
    assert sorted(p.name for p in Path(env["repo"]).rglob("*")) == objects
    assert _secret(env["secret"]) == KEY
    assert main(["check"]) == 0


def test_other_values_need_force_and_setup_says_what_would_change(env, capsys, monkeypatch):
    from blocks.files import FilesTarget

    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    assert _setup(env) == 0
    capsys.readouterr()
    name = f"up-{env['suffix']}"
    moved = env["tmp"] / "moved"
    moved.mkdir()
    args = ["--files", f"{name}={moved}"]
    # Another path for the same files target, and a compression level for the repository.
    assert main([
        "setup", "--repo-path", env["repo"], "--master-key-secret", env["secret"],
        *args, "--compression-level", "3",
    ]) == 2  # fmt: skip
    line = _err(capsys)
    assert f"files target block {name!r}: path {env['uploads']!r} -> {str(moved)!r}" in line
    assert "compression_level None -> 3" in line and "--force" in line
    assert FilesTarget.load_sync(name).path == env["uploads"]

    # The key given differs from the Secret block's, though both... only --force replaces it.
    assert main([
        "setup", "--repo-path", env["repo"], "--master-key-secret", env["secret"], *args,
        "--compression-level", "3", "--force",
    ]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"target      {name}: files {moved} [replaced]" in out
    assert FilesTarget.load_sync(name).path == str(moved)


def test_a_different_key_in_the_secret_block_is_not_overwritten(env, capsys, monkeypatch):
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    assert _setup(env) == 0
    capsys.readouterr()
    # Someone stored another key in the Secret block: the repository still opens with KEY.
    Secret(value=SecretStr(OTHER_KEY)).save(env["secret"], overwrite=True)
    assert _setup(env) == 2
    line = _err(capsys)
    assert f"Secret block {env['secret']!r} holds another master key" in line
    assert _secret(env["secret"]) == OTHER_KEY
    assert _setup(env, "--force") == 0
    assert _secret(env["secret"]) == KEY


def test_bad_targets_are_refused_before_anything_is_written(env, capsys, monkeypatch):
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    repo = Path(env["repo"])
    base = ["setup", "--repo-path", env["repo"], "--master-key-secret", env["secret"]]
    assert main([*base, "--chroma-path", str(env["tmp"] / "no-such-dir")]) == 2
    assert "does not exist" in _err(capsys)
    assert main([*base, "--files", "everything=/"]) == 2
    assert "not the whole machine" in _err(capsys)
    assert main([*base, "--files", f"inside={repo / 'data'}"]) == 2
    assert "inside) the repository" in _err(capsys)
    assert not repo.exists()

    # A tree that holds the repository leaves it out, with a warning.
    holder = env["tmp"] / "srv"
    (holder / "uploads").mkdir(parents=True)
    (holder / "uploads" / "a.txt").write_text("a")
    assert main(["setup", "--repo-path", str(holder / "backups" / "repo"), "--master-key-secret",
                 env["secret"], "--files", f"srv-{env['suffix']}={holder}"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "warning: files target" in out and "exclude /backups/repo/" in out
    assert main(["backup", "--files", f"srv-{env['suffix']}"]) == 0
    assert "1 file (" in capsys.readouterr().out


def test_a_repository_path_that_is_a_file_is_a_usage_error(env, capsys, monkeypatch):
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    afile = env["tmp"] / "a-file"
    afile.write_text("not a repository")
    rc = main(["setup", "--repo-path", str(afile), "--master-key-secret", env["secret"],
               "--files", f"up-{env['suffix']}={env['uploads']}"])  # fmt: skip
    assert rc == 2
    line = _err(capsys)
    assert str(afile) in line and "is a file, not a directory" in line
    assert afile.read_text() == "not a repository"


def test_repository_only_sets_up_a_second_copy_with_its_own_key(env, capsys, monkeypatch):
    """A second copy's destination: its repository block, its own key, no targets; then
    `copy --to` fills it and a re-run changes nothing."""
    monkeypatch.setenv("SCHOLAR_OPS_MASTER_KEY", KEY)
    assert _setup(env) == 0
    monkeypatch.delenv("SCHOLAR_OPS_MASTER_KEY")
    assert main(["backup", "--files", f"up-{env['suffix']}"]) == 0
    capsys.readouterr()
    offsite, off_secret = f"offsite-{env['suffix']}", f"offkey-{env['suffix']}"
    key_file = env["tmp"] / "offsite.key"
    monkeypatch.setenv("PGDATABASE", "ignored")  # the environment's targets are left out
    base = ["--repository", offsite, "setup", "--repository-only", "--repo-path",
            str(env["tmp"] / "offsite"), "--master-key-secret", off_secret]  # fmt: skip
    assert main([*base, "--new-key-file", str(key_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "generated a new master key" in out[0]
    assert [line.split()[0] for line in out[1:]] == ["repository", "master"]
    assert all(line.endswith("[created]") for line in out[1:]), out
    assert _secret(off_secret) == key_file.read_text().strip() != KEY
    assert main(["copy", "--to", offsite]) == 0
    capsys.readouterr()
    assert main(["--repository", offsite, "snapshots"]) == 0
    assert f"up-{env['suffix']}" in capsys.readouterr().out

    # Again, with the key file: nothing changes; targets are refused.
    assert main([*base, "--master-key-file", str(key_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.endswith("[unchanged]") for line in out), out
    assert main([*base, "--files", f"x={env['uploads']}", "--chroma-port", "8000"]) == 2
    line = _err(capsys)
    assert "--repository-only" in line and "--files, --chroma-port" in line
