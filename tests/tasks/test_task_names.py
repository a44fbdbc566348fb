"""Task run names: one pattern, "<verb> <component> <what>", for every component's backup,
drill and restore task (what an operator reads in the Prefect UI's run graph)."""

from __future__ import annotations

import re

import pytest
from prefect._internal.engine import resolve_custom_task_run_name

from tasks.chroma import restore_chroma_target
from tasks.files import restore_files_target
from tasks.postgres import restore_postgres_target
from tasks.redis import restore_redis_target
from tasks.repository import check_repository, prune_snapshots
from tasks.targets import backup_target, drill_target

PATTERN = re.compile(r"^(backup|drill|restore) (postgres|postgres-base|redis|chroma|files) \S+")


def _name(task, **parameters) -> str:
    """The name Prefect gives a run of ``task`` with these parameters."""
    return resolve_custom_task_run_name(task, parameters)


@pytest.mark.parametrize("component", ["postgres", "postgres-base", "redis", "chroma", "files"])
def test_backup_and_drill_of_every_component(component):
    target = f"aischolar-{component}"
    backup = _name(backup_target, repository="r", component=component, target=target)
    drill = _name(drill_target, repository="r", component=component, target=target)
    assert backup == f"backup {component} {target}"
    assert drill == f"drill {component} {target}"
    assert PATTERN.match(backup) and PATTERN.match(drill)


def test_restores_name_component_snapshot_and_destination():
    names = {
        "postgres": _name(
            restore_postgres_target, repository="r", snapshot="latest",
            target="aischolar-postgres", database="aischolar_restored",
        ),
        "redis into a server": _name(
            restore_redis_target, repository="r", snapshot="1a2b3c4d",
            target="aischolar-redis-restore", rdb_dir=None,
        ),
        "redis rdb": _name(
            restore_redis_target, repository="r", snapshot="latest", target=None,
            rdb_dir="/restore/redis/run-1",
        ),
        "chroma": _name(
            restore_chroma_target, repository="r", snapshot="latest", target=None,
            directory="/restore/chroma/run-1",
        ),
        "files": _name(
            restore_files_target, repository="r", destination="/restore/files/run-1",
            snapshot="latest",
        ),
    }  # fmt: skip
    assert names == {
        "postgres": "restore postgres latest into aischolar_restored",
        "redis into a server": "restore redis 1a2b3c4d into aischolar-redis-restore",
        "redis rdb": "restore redis latest into /restore/redis/run-1",
        "chroma": "restore chroma latest into /restore/chroma/run-1",
        "files": "restore files latest into /restore/files/run-1",
    }
    assert all(PATTERN.match(n) for n in names.values())
    # Neither destination given (the task then fails on its own): still a readable name.
    assert _name(restore_chroma_target, snapshot="latest") == "restore chroma latest"


def test_repository_tasks_name_the_repository():
    assert _name(check_repository, repository="scholar-ops-repository", read_data=0.1) == (
        "check repository scholar-ops-repository"
    )
    assert _name(prune_snapshots, repository="repo-1", policy=None) == "prune repository repo-1"
