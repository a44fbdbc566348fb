"""Rotate the master key: rewrap the repository's data keys with a new one.

The new key waits in a Secret block of its own (the command line makes it; a
flow parameter never holds a key). The key sets are rewrapped (no data object
is rewritten); then the repository's master key Secret block gets the new key
and the waiting one is deleted. A run that fails part-way is finished by
running it again (the rewrap is skipped when the new key already opens the
repository).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from blocks.names import DEFAULT_MASTER_KEY_SECRET, DEFAULT_REPOSITORY_BLOCK
from tasks.common import load_repository
from tasks.repository import rewrap_key_sets


@task(name="install-master-key")
def install_master_key(repository: str, new_master_key_secret: str) -> str:
    """Copy the new key into the repository's Secret block; delete the waiting one."""
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from blocks.secrets import read_string_secret

    block = load_repository(repository)
    new = read_string_secret(new_master_key_secret, "rotate-master-key", "new master key")
    Secret(value=SecretStr(new)).save(block.master_key_secret, overwrite=True)
    Secret.delete(new_master_key_secret)
    return block.master_key_secret


#: Where the command line puts the new key for the flow (never a flow parameter itself).
WAITING_KEY_SECRET = f"{DEFAULT_MASTER_KEY_SECRET}-rotating"


@flow(name="rotate-master-key", log_prints=True)
def rotate_master_key(
    new_master_key_secret: str = WAITING_KEY_SECRET, repository: str = DEFAULT_REPOSITORY_BLOCK
) -> list[str]:
    """Rewrap every key set of the repository with the key in the Secret block
    ``new_master_key_secret``, then make it the repository's master key."""
    rewrapped = rewrap_key_sets(repository, new_master_key_secret)
    secret = install_master_key(repository, new_master_key_secret)
    get_run_logger().info(
        "rewrapped %d key set(s); Secret block %r holds the new master key", len(rewrapped), secret
    )
    return rewrapped
