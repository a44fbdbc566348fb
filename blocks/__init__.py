"""Prefect blocks and the glue that turns them into engine objects.

Blocks hold configuration and secrets only; the engine (``vault``) receives
plain values and never imports Prefect.
"""

from __future__ import annotations


def register_blocks() -> list[str]:
    """Register scholar-ops' block types (and the ones they nest) with the Prefect API.

    Idempotent; used by ``scholar-ops setup``. Registers the target blocks
    (``PostgresTarget``, ``PostgresClusterTarget``, ``RedisTarget``, ``ChromaTarget``, ``FilesTarget``),
    ``FunctionalTestPlan``, ``BackupRepository`` (which also registers prefect-aws' ``S3Bucket``,
    ``AwsCredentials`` and ``MinIOCredentials``), ``MonitoringSettings`` and Prefect's
    ``Secret``.
    Returns the slugs of the block types registered.
    """
    # Imported here: importing ``blocks`` (e.g. for ``blocks.storage``) stays cheap.
    from prefect.blocks.core import Block
    from prefect.blocks.system import Secret

    from blocks.chroma import ChromaTarget
    from blocks.files import FilesTarget
    from blocks.monitoring import MonitoringSettings
    from blocks.postgres import PostgresClusterTarget, PostgresTarget
    from blocks.redis import RedisTarget
    from blocks.repository import BackupRepository
    from blocks.testing import FunctionalTestPlan

    block_types: list[type[Block]] = [
        Secret,
        PostgresTarget,
        PostgresClusterTarget,
        RedisTarget,
        ChromaTarget,
        FilesTarget,
        BackupRepository,
        MonitoringSettings,
        FunctionalTestPlan,
    ]
    for block_type in block_types:
        block_type.register_type_and_schema(_sync=True)  # type: ignore[call-arg]
    return [b.get_block_type_slug() for b in block_types]
