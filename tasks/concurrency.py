"""Global concurrency limits: Prefect's own, shared by every worker of the server.

- At most ``SCHOLAR_OPS_MAX_DUMPS_PER_SERVER`` (default 2) backups read from one
  database server at a time, whichever worker runs them: one limit per server,
  named ``scholar-ops dumps <kind> <host>:<port>`` (PostgreSQL dumps and base
  backups share their server's limit; Redis and Chroma servers have their own;
  files and embedded Chroma directories have none).
- At most one prune (apply-retention) per repository at a time: the limit
  ``scholar-ops prune <location>`` of size 1. (The store's own locks keep a prune
  correct anyway; the limit keeps two from queueing on those locks for ten minutes.)

A limit is created with its configured size the first time a task needs it, and set
back to that size if someone changed it; every worker must therefore have the same
setting. Names hold a kind, a host and a port, or the repository's location (which
never holds credentials): no user name, no password.

Slots are leases: a worker that dies holding one frees it when its lease runs out
(``SCHOLAR_OPS_SLOT_LEASE_SECONDS``, default 120, at least 60; the server's repossessor
looks every 15 s). A task waits up to ``SCHOLAR_OPS_SLOT_WAIT_SECONDS`` (default 6 hours)
for its slot, then fails naming the limit.

Without a Prefect API (a task called with ``.fn()`` outside any run and no
PREFECT_API_URL) there is nothing to share the limit with: the work runs unlimited.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.types.names import BANNED_CHARACTERS

from scholar_ops.vault.errors import ConfigError, VaultError

log = logging.getLogger(__name__)

MAX_DUMPS_ENV = "SCHOLAR_OPS_MAX_DUMPS_PER_SERVER"
LEASE_ENV = "SCHOLAR_OPS_SLOT_LEASE_SECONDS"
WAIT_ENV = "SCHOLAR_OPS_SLOT_WAIT_SECONDS"
DEFAULT_MAX_DUMPS = 2
DEFAULT_LEASE_S = 120
MIN_LEASE_S = 60  # the Prefect server refuses shorter leases
DEFAULT_WAIT_S = 6 * 3600
PREFIX = "scholar-ops"
MAX_NAME = 200
#: target components whose dumps count against their server's limit, by server kind
SERVER_KIND = {
    "postgres": "postgres",
    "postgres-base": "postgres",
    "redis": "redis",
    "chroma": "chroma",
}


class SlotTimeout(VaultError):
    """No slot of a concurrency limit came free in time."""


def _int_setting(env: str, default: int, minimum: int) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{env}={raw!r}: give a whole number, at least {minimum}")
    return value


def max_dumps_per_server() -> int:
    """How many backups may read from one database server at once (the setting)."""
    return _int_setting(MAX_DUMPS_ENV, DEFAULT_MAX_DUMPS, 1)


def lease_seconds() -> int:
    return _int_setting(LEASE_ENV, DEFAULT_LEASE_S, MIN_LEASE_S)


def wait_seconds() -> int:
    return _int_setting(WAIT_ENV, DEFAULT_WAIT_S, 1)


def limit_name(*parts: str) -> str:
    """``scholar-ops <parts...>``: characters Prefect refuses in names (``/ % & > <``)
    become ``_``; a name too long keeps its start and gets a digest of the whole."""
    name = " ".join((PREFIX, *parts))
    for ch in BANNED_CHARACTERS:
        name = name.replace(ch, "_")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[: MAX_NAME - 13]}~{digest}"
    return name


def dump_limit_name(component: str, block: Any) -> str | None:
    """The limit of the database server a target block reads from: ``scholar-ops dumps
    <kind> <host>:<port>``; None for targets that are not a server (files, an embedded
    Chroma directory)."""
    kind = SERVER_KIND.get(component)
    host = getattr(block, "host", None)
    port = getattr(block, "port", None)
    if kind is None or not host or port is None:
        return None
    # A host is a name, an address or a socket directory; never let "user:pw@" through.
    host = str(host).rpartition("@")[2].strip().lower()
    return limit_name("dumps", kind, f"{host}:{int(port)}")


def prune_limit_name(location: str) -> str:
    """The limit of one repository (its location: a path or an s3:// URL, no secrets)."""
    return limit_name("prune", location)


def api_available() -> bool:
    """A Prefect API to share limits through: PREFECT_API_URL, or a run in progress (an
    ephemeral server started for it)."""
    if PREFECT_API_URL.value():
        return True
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def ensure_limit(name: str, limit: int) -> None:
    """Make the global concurrency limit ``name`` exist, active or not as an operator left
    it, with ``limit`` slots (created, or its size set back)."""
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit)
                )
                log.info("created the concurrency limit %r (%d slots)", name, limit)
                return
            except ObjectAlreadyExists:  # another worker made it meanwhile
                current = client.read_global_concurrency_limit_by_name(name)
        if current.limit != limit:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
            log.info("concurrency limit %r: %d slots (was %d)", name, limit, current.limit)


@contextmanager
def slot(name: str | None, limit: int, what: str, logger: Any = None) -> Iterator[None]:
    """Hold one slot of the global limit ``name`` (``limit`` slots) while the block runs.

    None, or no Prefect API: no limit. Waits up to SCHOLAR_OPS_SLOT_WAIT_SECONDS, then
    raises SlotTimeout naming the limit."""
    logger = logger or log
    if name is None or not api_available():
        yield
        return
    wait, lease = wait_seconds(), lease_seconds()
    ensure_limit(name, limit)
    started = time.monotonic()
    with ExitStack() as held:
        try:
            held.enter_context(
                concurrency(
                    name,
                    occupy=1,
                    timeout_seconds=wait,
                    lease_duration=lease,
                    strict=True,
                    # a renewal that fails once (a busy server) must not end an hour's dump
                    raise_on_lease_renewal_failure=False,
                )
            )
        except TimeoutError:
            raise SlotTimeout(
                f"{what}: no slot of the concurrency limit {name!r} ({limit}) came free "
                f"within {wait} s: see the Concurrency page of the Prefect UI, or raise "
                f"{WAIT_ENV}"
            ) from None
        waited = time.monotonic() - started
        if waited >= 1:
            logger.info("%s: waited %.0f s for a slot of %r", what, waited, name)
        yield


def dump_slot(component: str, block: Any, logger: Any = None) -> Any:
    """The slot a backup of ``block`` holds on its database server's limit."""
    return slot(
        dump_limit_name(component, block),
        max_dumps_per_server(),
        f"backup of {component} {getattr(block, 'target_name', '')}".rstrip(),
        logger,
    )


def prune_slot(location: str, logger: Any = None) -> Any:
    """The one slot a prune holds on its repository's limit."""
    return slot(prune_limit_name(location), 1, f"prune of {location}", logger)
