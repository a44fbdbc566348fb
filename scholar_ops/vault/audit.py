"""The audit trail: who read or changed backups, when, and how it went.

Every operation that reads or changes backups (backup, restore, check, prune, copy, key
rotation, init, unlock, migrate) appends one record. A record is a sealed object
``audit/<seq>-<random>`` (sequence number in 12 decimal digits, then 16 random hex digits),
bound to its name like every sealed object, whose compact-JSON payload names its
predecessors: ``prev`` is a list of ``{"name", "sha256"}``, the SHA-256 of each predecessor's
*stored bytes*. A writer lists ``audit/``, reads the newest records (the last
``TIP_WINDOW`` by sequence number), and chains from every record among them that no other
record names (the tips): two writers that appended at once leave a fork, and the next writer
merges it. ``seq`` is one more than the highest sequence number listed.

Verification (``verify``): every record opens under its own name (an edited, re-keyed or
swapped object is refused), its payload's ``seq`` matches its name, each predecessor it names
exists, has a lower ``seq`` and has the recorded hash, and only sequence number 1 may name no
predecessor. So a deleted, edited or reordered record is found, naming it (or the record
that names the missing one). A deleted *tip* leaves nothing behind to notice it: the tip's
sequence number is exported as a metric (``tip``) and an alert fires when it goes down.

Appending never needs a lock, never fails the operation it records (``append_quietly``: a
warning in the log, returned to the caller) and never records secrets: errors are one line,
URL credentials and ``password=``-style values are removed, and the master key's text is
replaced wherever it appears. No Prefect import: the flow run id comes from the caller or
from ``PREFECT__FLOW_RUN_ID``, which Prefect sets in the processes its workers start.

Callers: ``BackupWriter`` (backup), ``restoring`` (every component's restore, and the
Chroma drill's verify), ``checker.check``, ``prune.forget_and_prune``,
``Repository.init`` / ``rotate_master_key``, ``lock.remove_locks`` (unlock),
``migrate.migrate``. For a copy (``scholar_ops.vault.copy``), the API is
``with recorded(destination, "copy", snapshots=[...], details={...}) as rec:`` (and the
same, or ``append_quietly``, on the source): ``rec.snapshots`` / ``rec.details`` may be
filled in as the copy goes; the record is written when the block ends, ``failed`` with the
error if it raises.

WAL archiving (``scholar_ops.walcmd``, ``walserver``) is not audited per segment: it runs
once per 16 MB segment and must stay fast; base backups are audited like every backup.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scholar_ops.vault.errors import IntegrityError, ObjectNotFound

# logging and thread pools are imported where they are used: Repository.init appends a
# record, and opening a repository stays light (the WAL command opens one per segment).
if TYPE_CHECKING:
    import logging

    from scholar_ops.vault.repository import Repository
    from scholar_ops.vault.snapshot import Snapshot


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("scholar_ops.vault.audit")


AUDIT_PREFIX = "audit/"
AUDIT_KIND = "audit record"
RECORD_VERSION = 1
SEQ_DIGITS = 12
#: How many of the newest records a writer reads to find the tips it chains from.
TIP_WINDOW = 16
FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
MAX_ERROR_LEN = 300

OPERATIONS = frozenset(
    {
        "backup",
        "restore",
        "verify",
        "check",
        "prune",
        "copy",
        "key-rotate",
        "init",
        "unlock",
        "migrate",
    }
)

_NAME_RE = re.compile(r"^audit/(\d{" + str(SEQ_DIGITS) + r"})-([0-9a-f]{16})$")
_URL_CRED_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")
# password=, PGPASSWORD=, token: , SCHOLAR_OPS_MASTER_KEY=, aws_secret_access_key=...
_SECRET_KV_RE = re.compile(
    r"(?i)\b(\w*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|_key))"
    r"(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s&;,)]+)"
)


@dataclass(frozen=True)
class Record:
    """One audit record as stored (``name`` and the SHA-256 of its stored bytes added)."""

    name: str
    seq: int
    time: str
    operation: str
    outcome: str  # "ok" or "failed"
    error: str | None
    snapshots: list[str]
    user: str
    host: str
    pid: int
    flow_run_id: str | None
    details: dict[str, Any]
    prev: list[dict[str, str]]
    sha256: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seq": self.seq,
            "time": self.time,
            "operation": self.operation,
            "outcome": self.outcome,
            "error": self.error,
            "snapshots": self.snapshots,
            "user": self.user,
            "host": self.host,
            "pid": self.pid,
            "flow_run_id": self.flow_run_id,
            "details": self.details,
            "prev": self.prev,
            "sha256": self.sha256,
        }


def seq_of(name: str) -> int | None:
    m = _NAME_RE.match(name)
    return int(m.group(1)) if m else None


def record_name(seq: int) -> str:
    return f"{AUDIT_PREFIX}{seq:0{SEQ_DIGITS}d}-{os.urandom(8).hex()}"


def one_line_error(error: BaseException | str, secrets: Iterable[str] = ()) -> str:
    """``error`` as one short line without credentials (URL users/passwords, key=value, secrets)."""
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        if isinstance(error, KeyboardInterrupt):
            text = "interrupted"
    else:
        text = error
    text = " ".join(text.split())
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<secret>")
    text = _URL_CRED_RE.sub(r"\1", text)
    text = _SECRET_KV_RE.sub(r"\1\2<redacted>", text)
    if len(text) > MAX_ERROR_LEN:
        text = text[: MAX_ERROR_LEN - 1] + "…"
    return text


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid (containers)
        return str(os.getuid())


def _secrets(repo: Repository) -> list[str]:
    try:
        return [repo.master.secret.decode("utf-8", "replace")]
    except AttributeError:
        return []


def _list_names(repo: Repository) -> list[tuple[int, str]]:
    out = []
    for info in repo.storage.list(AUDIT_PREFIX):
        seq = seq_of(info.name)
        if seq is not None:
            out.append((seq, info.name))
    out.sort()
    return out


def _decode(repo: Repository, name: str, data: bytes) -> Record:
    payload = repo.unseal(name, data, AUDIT_KIND)
    try:
        d = json.loads(payload)
        rec = Record(
            name=name,
            seq=int(d["seq"]),
            time=str(d["time"]),
            operation=str(d["operation"]),
            outcome=str(d["outcome"]),
            error=d.get("error"),
            snapshots=[str(s) for s in d.get("snapshots", [])],
            user=str(d.get("user", "")),
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0)),
            flow_run_id=d.get("flow_run_id"),
            details=dict(d.get("details") or {}),
            prev=[{"name": str(p["name"]), "sha256": str(p["sha256"])} for p in d["prev"]],
            sha256=hashlib.sha256(data).hexdigest(),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{name}: audit record is malformed ({e})", name) from None
    return rec


def read_record(repo: Repository, name: str) -> Record:
    return _decode(repo, name, repo.storage.get(name))


def append(
    repo: Repository,
    operation: str,
    *,
    outcome: str = "ok",
    error: BaseException | str | None = None,
    snapshots: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> Record:
    """Append one record, chained from the tips among the newest records; returns it."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown audit operation {operation!r}")
    if outcome not in ("ok", "failed"):
        raise ValueError(f"audit outcome must be 'ok' or 'failed', not {outcome!r}")
    names = _list_names(repo)
    recent = names[-TIP_WINDOW:]
    seen: dict[str, Record] = {}

    def load(name: str) -> Record | None:
        try:
            return read_record(repo, name)
        except ObjectNotFound:
            return None
        except IntegrityError as e:  # verify names it; the chain goes on from the others
            _log().warning("audit: chaining past an unreadable record: %s", e)
            return None

    if len(recent) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            loaded = list(pool.map(load, [n for _, n in recent]))
    else:  # the first records (Repository.init): no thread pool to import
        loaded = [load(n) for _, n in recent]
    for rec in loaded:
        if rec is not None:
            seen[rec.name] = rec
    named = {p["name"] for r in seen.values() for p in r.prev}
    tips = [r for n, r in seen.items() if n not in named]
    seq = (names[-1][0] if names else 0) + 1
    name = record_name(seq)
    secrets = _secrets(repo)
    doc = {
        "version": RECORD_VERSION,
        "seq": seq,
        "time": datetime.now(UTC).isoformat(),
        "operation": operation,
        "outcome": outcome,
        "error": one_line_error(error, secrets) if error is not None else None,
        "snapshots": list(snapshots),
        "user": _user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "flow_run_id": flow_run_id
        or getattr(repo, "flow_run_id", None)
        or os.environ.get(FLOW_RUN_ENV)
        or None,
        "details": _clean_details(details or {}, secrets),
        "prev": [{"name": r.name, "sha256": r.sha256} for r in sorted(tips, key=_order)],
    }
    payload = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    data = repo.seal(name, payload)
    repo.storage.put(name, data)
    return _decode(repo, name, data)


def _clean_details(details: dict[str, Any], secrets: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in details.items():
        if isinstance(v, str):
            out[k] = one_line_error(v, secrets)
        elif v is None or isinstance(v, bool | int | float):
            out[k] = v
        elif isinstance(v, list | tuple):
            out[k] = [one_line_error(str(x), secrets) for x in v]
        else:
            out[k] = one_line_error(str(v), secrets)
    return out


def append_quietly(repo: Repository, operation: str, **kwargs: Any) -> Exception | None:
    """``append``, but a failure is logged as a warning and returned, never raised.

    An operation that completed (a committed backup) stays a success when its record
    cannot be written: the record is lost, the backup is not.
    """
    try:
        append(repo, operation, **kwargs)
    except Exception as e:
        _log().warning(
            "audit: could not record %s (%s) in %s: %s",
            operation,
            kwargs.get("outcome", "ok"),
            repo.location,
            one_line_error(e, _secrets(repo)),
        )
        return e
    return None


@dataclass
class Audited:
    """What ``recorded`` yields: fill in the snapshots and details as they become known."""

    snapshots: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    audit_error: Exception | None = None


@contextlib.contextmanager
def recorded(
    repo: Repository,
    operation: str,
    *,
    snapshots: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    flow_run_id: str | None = None,
) -> Iterator[Audited]:
    """Record ``operation`` when the block ends: ``ok``, or ``failed`` with the error (re-raised)."""
    state = Audited(list(snapshots), dict(details or {}))
    try:
        yield state
    except BaseException as e:
        append_quietly(
            repo,
            operation,
            outcome="failed",
            error=e,
            snapshots=state.snapshots,
            details=state.details,
            flow_run_id=flow_run_id,
        )
        raise
    state.audit_error = append_quietly(
        repo,
        operation,
        snapshots=state.snapshots,
        details=state.details,
        flow_run_id=flow_run_id,
    )


@contextlib.contextmanager
def restoring(repo: Repository, snap: Snapshot, operation: str = "restore") -> Iterator[Audited]:
    """A restore (or a drill's ``verify``) of ``snap``: its shared lock, and its record."""
    details = {"component": snap.component, "target": snap.target}
    with (
        recorded(repo, operation, snapshots=[snap.backup_id], details=details) as state,
        repo.lock(f"{operation} {snap.short_id}"),
    ):
        yield state


# -- reading and verifying -----------------------------------------------------


@dataclass
class AuditProblem:
    object_name: str
    message: str

    def __str__(self) -> str:
        return f"{self.object_name}: {self.message}"


@dataclass
class AuditReport:
    records: list[Record] = field(default_factory=list)  # readable ones, in chain order
    problems: list[AuditProblem] = field(default_factory=list)  # first (lowest seq) first
    tips: list[str] = field(default_factory=list)  # records no other record names

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def tip(self) -> Record | None:
        return max(self.records, key=_order) if self.records else None


def _order(r: Record) -> tuple[int, str]:
    return (r.seq, r.name)


def read_all(repo: Repository, workers: int = 8) -> tuple[list[Record], list[AuditProblem]]:
    """Every record (oldest first) and the problems of those that cannot be read."""
    names = _list_names(repo)
    records: list[Record] = []
    problems: list[AuditProblem] = []

    def load(name: str) -> Record | AuditProblem | None:
        try:
            return read_record(repo, name)
        except ObjectNotFound:
            return None
        except IntegrityError as e:
            text = str(e)
            text = text[len(name) + 2 :] if text.startswith(name + ": ") else text
            return AuditProblem(name, text)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        for item in pool.map(load, [n for _, n in names]):
            if isinstance(item, Record):
                records.append(item)
            elif item is not None:
                problems.append(item)
    for info in repo.storage.list(AUDIT_PREFIX):
        if seq_of(info.name) is None:
            problems.append(AuditProblem(info.name, "not an audit record name"))
    records.sort(key=_order)
    return records, problems


def verify(repo: Repository) -> AuditReport:
    """Walk the chain: every record authentic, every link present and matching."""
    records, problems = read_all(repo)
    report = AuditReport(records=records)
    by_name = {r.name: r for r in records}
    unreadable = {p.object_name for p in problems}
    named: set[str] = set()
    for r in records:
        if r.seq != seq_of(r.name):
            problems.append(AuditProblem(r.name, f"holds sequence number {r.seq}"))
        if not r.prev and r.seq != 1:
            problems.append(
                AuditProblem(r.name, "names no predecessor, yet it is not the first record")
            )
        for link in r.prev:
            named.add(link["name"])
            p = by_name.get(link["name"])
            if p is None:
                if link["name"] not in unreadable:
                    problems.append(
                        AuditProblem(
                            link["name"],
                            f"missing: record {r.name} names it as its predecessor "
                            "(deleted from the repository)",
                        )
                    )
                continue
            if p.sha256 != link["sha256"]:
                problems.append(
                    AuditProblem(
                        p.name, f"is not the record {r.name} chained from (replaced or edited)"
                    )
                )
            if p.seq >= r.seq:
                problems.append(
                    AuditProblem(r.name, f"names {p.name}, which is not older, as predecessor")
                )
    report.tips = [r.name for r in records if r.name not in named]
    report.problems = sorted(problems, key=lambda p: (seq_of(p.object_name) or 0, p.object_name))
    return report


def compare_tip_seen(
    report: AuditReport, state_dir: Path, repo_id: str, *, accept: bool = False
) -> AuditProblem | None:
    """The newest record this host saw (``audit-tip-<repo_id>.json`` in ``state_dir``, next
    to check's known snapshots) must still be there, unchanged: records are never deleted,
    so its absence means the newest records were deleted or the repository rolled back,
    even when later records brought the sequence number back up. ``accept`` records the
    current tip instead. The file moves to the newest tip unless a problem is returned."""
    path = state_dir / f"audit-tip-{repo_id[:32]}.json"
    try:
        seen = json.loads(path.read_text())
        seen_seq, seen_name, seen_hash = int(seen["seq"]), str(seen["name"]), str(seen["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        seen_seq, seen_name, seen_hash = 0, "", ""
    by_name = {r.name: r for r in report.records}
    newest = report.tip
    if seen_name and not accept:
        found = by_name.get(seen_name)
        if found is None and seen_name not in {p.object_name for p in report.problems}:
            now = newest.seq if newest is not None else 0
            return AuditProblem(
                seen_name,
                f"missing: this host saw it as the newest audit record (number {seen_seq}); "
                f"it is gone, the newest now is number {now} (the newest records were "
                "deleted, or the repository was rolled back); after investigating, "
                "`scholar-ops check --accept-missing` stops reporting it",
            )
        if found is not None and found.sha256 != seen_hash:
            return AuditProblem(seen_name, "is not the record this host saw (replaced)")
    if newest is not None and (newest.seq > seen_seq or accept or seen_name not in by_name):
        _save_json(path, {"seq": newest.seq, "name": newest.name, "sha256": newest.sha256})
    return None


def _save_json(path: Path, doc: dict[str, Any]) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, sort_keys=True)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def tip(repo: Repository) -> tuple[int, str] | None:
    """(sequence number, SHA-256 of the stored bytes) of the newest record, or None.

    Reads one object: what the metrics export publishes each minute.
    """
    names = _list_names(repo)
    for _seq, name in reversed(names):
        try:
            data = repo.storage.get(name)
        except ObjectNotFound:
            continue
        return _seq, hashlib.sha256(data).hexdigest()
    return None


__all__ = [
    "AUDIT_PREFIX",
    "AuditProblem",
    "AuditReport",
    "Audited",
    "Record",
    "append",
    "append_quietly",
    "one_line_error",
    "read_all",
    "recorded",
    "restoring",
    "tip",
    "verify",
]
