"""Every error scholar-ops raises on purpose, readable at once.

The root is ``VaultError`` (named for the store, where it began); every layer
raises subclasses of it, and the command line maps the classes to its exit codes
(scholar_ops/cli/errors.py: integrity 3, locked 4, configuration and usage 2,
anything else 1).

VaultError                      base; str() says what went wrong and what to do
├── StorageError                the storage backend failed
│   ├── ObjectNotFound          an object the store needs is missing
│   ├── ObjectLocked            S3 Object Lock keeps it until its retention date
│   ├── StorageFull             the file system holding a local repository is full
│   ├── DeleteDenied            the credentials may not delete (a backup writer's)
│   └── TransientStorageError   worth retrying (timeouts, 5xx, throttling)
│       └── CircuitOpen         not tried: the location's breaker is open (storage.breaker)
├── RepositoryNotFound          no repository at that location (run init)
├── RepositoryExists            init on a location that already holds one
├── WrongKey                    the master key does not open this repository
├── IntegrityError              an object failed authentication or a hash check;
│   │                           carries .object_name (and .snapshot_id when known)
│   └── MisplacedObject         an authentic object under another object's name
│                               (copied or renamed over it); names both
├── RepositoryLocked            another process holds a conflicting lock
├── RepositoryFull              a backup would pass the repository's size limit (exit 1)
├── SnapshotNotFound            no snapshot matches the given id / selector
├── SourceError                 the source stream failed (e.g. pg_dump exited non-zero)
├── TargetNotEmpty              a restore would overwrite data without being told to
├── ConfigError                 bad configuration given by the operator
│   ├── FormatTooOld            a repository of an older format: run the migration
│   ├── HealthConfigError       a bad health-service setting (monitoring.health)
│   └── AutomationsError        a bad automations file or a missing reference
├── ServerStartError            a throwaway server did not come up (sources.process)
├── PushError                   the Pushgateway refused or could not be reached
└── OperationFailed             a run over several targets failed for some of them:
                                BackupFailed, DrillFailed, RepositoryDamaged (flows)
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class of every error raised by the store."""


class StorageError(VaultError):
    """The storage backend failed."""


class ObjectNotFound(StorageError):
    def __init__(self, name: str, location: str = "") -> None:
        where = f" in {location}" if location else ""
        super().__init__(f"object {name!r} not found{where}")
        self.object_name = name


class StorageFull(StorageError):
    """The file system (or quota) holding a local repository is full (ENOSPC, EDQUOT).
    Not retried; reported like a size limit reached (reason ``repository_full``)."""


class ObjectLocked(StorageError):
    """A delete refused because the object's S3 Object Lock retention has not ended."""

    def __init__(self, name: str, until: str, location: str = "") -> None:
        where = f" in {location}" if location else ""
        super().__init__(
            f"object {name!r}{where} is under S3 Object Lock retention until {until}: "
            "it cannot be deleted before then"
        )
        self.object_name = name
        self.until = until
        self.location = location

    def __reduce__(self) -> tuple[type[ObjectLocked], tuple[str, str, str]]:
        return (type(self), (self.object_name, self.until, self.location))


class DeleteDenied(StorageError):
    """A delete refused by the storage's access control (S3 ``AccessDenied``): the
    credentials may write but not delete, e.g. a backup host's (docs/s3-policies.md)."""

    def __init__(self, name: str, location: str = "") -> None:
        where = f" in {location}" if location else ""
        super().__init__(
            f"cannot delete {name!r}{where}: the credentials may not delete objects here "
            "(S3 AccessDenied); pruning needs the maintainer's credentials (docs/s3-policies.md)"
        )
        self.object_name = name
        self.location = location

    def __reduce__(self) -> tuple[type[DeleteDenied], tuple[str, str]]:
        return (type(self), (self.object_name, self.location))


class TransientStorageError(StorageError):
    """A failure that may go away when the call is repeated."""


class RepositoryNotFound(VaultError):
    pass


class RepositoryExists(VaultError):
    pass


class WrongKey(VaultError):
    pass


class IntegrityError(VaultError):
    def __init__(self, message: str, object_name: str, snapshot_id: str | None = None) -> None:
        super().__init__(message)
        self.object_name = object_name
        self.snapshot_id = snapshot_id


class MisplacedObject(IntegrityError):
    """An object that authenticates, but was written under another name."""

    def __init__(self, object_name: str, declared_name: str, kind: str = "") -> None:
        what = f"the {kind} written as" if kind else "the object written as"
        super().__init__(
            f"{object_name}: holds {what} {declared_name} (an object was copied or renamed "
            "over this one): refusing it",
            object_name,
        )
        self.declared_name = declared_name


class RepositoryLocked(VaultError):
    pass


class RepositoryFull(VaultError):
    """A backup would take the repository past its size limit (``vault.space``); nothing of
    the backup was committed. Carries the figures the message names."""

    def __init__(self, message: str, location: str = "", size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.location = location
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[type[RepositoryFull], tuple[str, str, int, int]]:
        return (type(self), (str(self), self.location, self.size, self.limit))


class SnapshotNotFound(VaultError):
    pass


class SourceError(VaultError):
    """``transient`` marks failures worth retrying (the server is unreachable or went away)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class TargetNotEmpty(VaultError):
    pass


class ConfigError(VaultError):
    pass


class TargetUnsuitable(ConfigError):
    """The place to restore into lacks what the backup needs (extensions, roles)."""


class FormatTooOld(ConfigError):
    """The repository was written in an older format that this version only migrates."""


class OperationFailed(VaultError):
    """A run over several targets (or objects) failed for some; the others' results stand."""
