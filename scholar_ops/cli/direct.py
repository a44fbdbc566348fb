"""Opening the repository a BackupRepository block names, without importing Prefect.

Read-only and administrative verbs (``snapshots``, ``check``, ``key list``,
``unlock``, ``migrate``) answer the way restic does: they read the repository
directly. Importing Prefect costs seconds, and without ``PREFECT_API_URL`` every
process that loads a block starts its own temporary API server. What the
block says is taken, in order, from:

1. the Prefect API over plain HTTP, when an API URL is configured
   (``PREFECT_API_URL``, or the active Prefect profile): the repository block and
   its master key's Secret block, one request each;
2. otherwise the *profile* that ``scholar-ops setup`` writes next to the blocks
   (``$SCHOLAR_OPS_CONFIG_DIR``, default ``~/.config/scholar-ops``,
   ``repositories/<block>.json``): the repository's location and, when setup
   read or wrote one, the key file's path; never the key itself. The key comes
   from ``SCHOLAR_OPS_MASTER_KEY`` / ``SCHOLAR_OPS_MASTER_KEY_FILE`` or that file;
   one that does not open the repository (rotated since) sends the verb to the
   Secret block through Prefect.

Only local (or mounted) repositories are opened this way; for S3, or when
neither source can give the key, ``None`` is returned and the verb loads the
blocks through Prefect (slower, same result).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scholar_ops.vault.crypto.keys import MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, MasterKey
from scholar_ops.vault.errors import ConfigError, RepositoryNotFound, WrongKey
from scholar_ops.vault.repository import Repository, load_key_sets
from scholar_ops.vault.storage import Storage, open_storage

CONFIG_DIR_ENV = "SCHOLAR_OPS_CONFIG_DIR"
REPOSITORY_BLOCK_SLUG = "scholar-ops-backup-repository"
SECRET_BLOCK_SLUG = "secret"
_HTTP_TIMEOUT = 10.0


def config_dir() -> Path:
    if value := os.environ.get(CONFIG_DIR_ENV):
        return Path(value)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scholar-ops"


@dataclass
class Profile:
    """What ``setup`` recorded about a repository block (no secrets)."""

    block: str
    local_path: str | None
    master_key_secret: str
    master_key_file: str | None = None
    repo_id: str | None = None

    @staticmethod
    def path(block: str) -> Path:
        return config_dir() / "repositories" / f"{block}.json"

    @classmethod
    def load(cls, block: str) -> Profile | None:
        try:
            doc = json.loads(cls.path(block).read_text())
            return cls(**{k: doc.get(k) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None

    def save(self) -> Path:
        path = self.path(self.block)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=1)
        os.replace(tmp, path)
        return path


def prefect_api_url() -> str | None:
    """PREFECT_API_URL from the environment, else from the active Prefect profile."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    return _profile_setting("PREFECT_API_URL")


def _profile_setting(name: str) -> str | None:
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or doc.get("active")
    value = doc.get("profiles", {}).get(active or "", {}).get(name)
    return str(value) if value else None


def _api_headers() -> dict[str, str]:
    if key := os.environ.get("PREFECT_API_KEY") or _profile_setting("PREFECT_API_KEY"):
        return {"Authorization": f"Bearer {key}"}
    if auth := os.environ.get("PREFECT_API_AUTH_STRING") or _profile_setting(
        "PREFECT_API_AUTH_STRING"
    ):
        return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    return {}


def read_block_data(api_url: str, slug: str, name: str) -> dict[str, Any] | None:
    """A block document's data (secrets included) from the Prefect API; None if missing."""
    import httpx

    url = f"{api_url.rstrip('/')}/block_types/slug/{slug}/block_documents/name/{name}"
    try:
        r = httpx.get(
            url,
            params={"include_secrets": "true"},
            headers=_api_headers(),
            timeout=_HTTP_TIMEOUT,
        )
    except httpx.HTTPError as e:
        raise ConfigError(
            f"cannot reach the Prefect API at {api_url} ({type(e).__name__}): start the Prefect "
            "server, or unset PREFECT_API_URL to use the local blocks"
        ) from None
    if r.status_code == 404:
        return None
    if r.status_code >= 400:
        raise ConfigError(
            f"the Prefect API at {api_url} answered {r.status_code} for block {name!r}"
        )
    data = r.json().get("data")
    return data if isinstance(data, dict) else None


def _key_from_env_or_file(key_file: str | None) -> MasterKey | None:
    if os.environ.get(MASTER_KEY_ENV) or os.environ.get(MASTER_KEY_FILE_ENV):
        return MasterKey.from_env()
    if key_file:
        try:
            return MasterKey.from_string(Path(key_file).read_text())
        except OSError:
            return None
    return None


def locate_directly(block: str) -> tuple[Storage, MasterKey] | None:
    """Storage and master key of block ``block`` without Prefect; None when not possible."""
    api = prefect_api_url()
    if api is not None:
        data = read_block_data(api, REPOSITORY_BLOCK_SLUG, block)
        if data is None:
            raise ConfigError(
                f"no backup repository block {block!r} on the Prefect API at {api}: create it "
                "with `scholar-ops setup`"
            )
        local_path = data.get("local_path")
        if not local_path:
            return None  # S3: through the prefect-aws blocks
        # The key where the flows take it from: the block's Secret block.
        secret = read_block_data(api, SECRET_BLOCK_SLUG, str(data.get("master_key_secret")))
        value = (secret or {}).get("value")
        if not isinstance(value, str):
            return None  # missing or not a string: the Prefect path says what is wrong
        return _storage(str(local_path)), MasterKey.from_string(value)
    profile = Profile.load(block)
    if profile is None or not profile.local_path:
        return None
    master = _key_from_env_or_file(profile.master_key_file)
    if master is None:
        return None
    return _storage(profile.local_path), master


def _storage(local_path: str) -> Storage:
    if local_path.startswith("file:"):
        return open_storage(local_path)
    return open_storage(Path(local_path).expanduser())


def locate(block: str) -> tuple[Storage, MasterKey]:
    """Storage and master key of block ``block``: directly when possible, else through Prefect.

    A key from the environment or a key file that does not open the repository (rotated
    since) is not final: the Secret block is asked, through Prefect.
    """
    found = locate_directly(block)
    if found is not None:
        try:
            load_key_sets(*found)
            return found
        except WrongKey:
            pass
        except RepositoryNotFound:
            return found  # opening says so, naming the location
    from tasks.common import load_repository

    repo_block = load_repository(block)
    return repo_block.storage(), repo_block.master_key()


def open_repository(block: str) -> Repository:
    """The repository of block ``block`` (see the module docstring for where it is read from)."""
    storage, master = locate(block)
    return Repository.open(storage, master)
