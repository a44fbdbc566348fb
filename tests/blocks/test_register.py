"""register_blocks(): the block types exist on the Prefect server afterwards."""

from __future__ import annotations

from prefect.client.orchestration import get_client

from blocks import register_blocks


def test_register_blocks_is_idempotent_and_includes_nested_types(prefect_harness):
    slugs = register_blocks()
    assert slugs == [
        "secret",
        "scholar-ops-postgresql-target",
        "scholar-ops-postgresql-cluster",
        "scholar-ops-redis-target",
        "scholar-ops-chroma-target",
        "scholar-ops-files-target",
        "scholar-ops-backup-repository",
        "scholar-ops-monitoring-settings",
        "scholar-ops-test-plan",
    ]
    assert register_blocks() == slugs  # again: nothing changes, nothing fails
    with get_client(sync_client=True) as client:
        schema_type_ids = {s.block_type_id for s in client.read_block_schemas()}
        for slug in [*slugs, "s3-bucket", "aws-credentials", "minio-credentials"]:
            block_type = client.read_block_type_by_slug(slug)
            assert block_type.id in schema_type_ids, slug
        repo_type = client.read_block_type_by_slug("scholar-ops-backup-repository")
        assert repo_type.name == "scholar-ops backup repository"
