"""A Redis server, from INFO: memory, clients, commands processed, last save, keys per database."""

from __future__ import annotations

import dataclasses
from typing import Any

from scholar_ops.monitoring import names
from scholar_ops.monitoring.samples import Sample, counter, gauge
from scholar_ops.sources.redis.conninfo import RedisConnInfo


def collect_redis(
    conninfo: RedisConnInfo, labels: dict[str, str], timeout: float = 10.0
) -> list[Sample]:
    """Samples of one server; ``labels`` (component, target) go on every sample.

    Connect and read timeouts are ``timeout`` (at most the target's own); raises
    ``redis.RedisError`` when the server cannot be reached.
    """
    info_conn = dataclasses.replace(
        conninfo,
        socket_timeout=min(timeout, conninfo.socket_timeout),
        connect_timeout=min(timeout, conninfo.connect_timeout),
    )
    client = info_conn.client(retries=0)
    try:
        info: dict[str, Any] = client.info("all")
    finally:
        client.close()
    samples = [
        gauge(names.DATABASE_UP, 1, labels),
        gauge(names.REDIS_MEMORY, float(info.get("used_memory", 0)), labels),
        gauge(names.REDIS_CLIENTS, float(info.get("connected_clients", 0)), labels),
        counter(names.REDIS_COMMANDS, float(info.get("total_commands_processed", 0)), labels),
    ]
    if "rdb_last_save_time" in info:
        samples.append(gauge(names.REDIS_LAST_SAVE, float(info["rdb_last_save_time"]), labels))
    for key, value in sorted(info.items()):
        if key.startswith("db") and key[2:].isdigit() and isinstance(value, dict):
            samples.append(
                gauge(names.REDIS_KEYS, float(value.get("keys", 0)), {**labels, "db": key[2:]})
            )
    return samples
