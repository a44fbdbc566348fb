"""What a Redis server says about itself: INFO (keyspace, server, persistence) and the
names of its function libraries."""

from __future__ import annotations

from typing import Any

import redis

from scholar_ops.sources.redis.client import reply_pairs


def keyspace(client: redis.Redis) -> dict[int, dict[str, int]]:
    """{db: {"keys": n, "expires": n}} for every database that holds keys."""
    info = client.info("keyspace")
    out: dict[int, dict[str, int]] = {}
    for name, v in info.items():
        if str(name).startswith("db") and isinstance(v, dict):
            out[int(str(name)[2:])] = {"keys": int(v["keys"]), "expires": int(v["expires"])}
    return out


def server_info(client: redis.Redis) -> dict[str, Any]:
    info = client.info()
    return {
        "redis_version": str(info.get("redis_version", "")),
        "role": str(info.get("role", "")),
        "used_memory": int(info.get("used_memory", 0)),
        "used_memory_human": str(info.get("used_memory_human", "")),
        "maxmemory_policy": str(info.get("maxmemory_policy", "")),
        "run_id": str(info.get("run_id", "")),
    }


def function_names(client: redis.Redis) -> list[str] | None:
    """Names of the server's function libraries (Redis 7.0+; none before); None when the
    user may not list them."""
    try:
        libraries = client.execute_command("FUNCTION", "LIST")
    except redis.ResponseError as e:
        return None if str(e).startswith("NOPERM") else []  # else: an older server
    names = []
    for lib in libraries:
        info = reply_pairs(lib)
        name = info.get("library_name", b"")
        names.append(name.decode(errors="replace") if isinstance(name, bytes) else str(name))
    return sorted(names)


def dirty_counter(client: redis.Redis) -> tuple[int, int]:
    """(writes since the last save, time of the last save): the server's write counter."""
    info = client.info("persistence")
    return int(info.get("rdb_changes_since_last_save", 0)), int(info.get("rdb_last_save_time", 0))
