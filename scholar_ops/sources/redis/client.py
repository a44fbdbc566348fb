"""Talking to a Redis server with redis-py: its errors as SourceError, a quick ping,
and replies left unparsed where redis-py's parsing loses information."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from scholar_ops.sources.redis.conninfo import RedisConnInfo
from scholar_ops.vault.errors import SourceError

_FETCH_RAW = ("XRANGE", "XPENDING", "HGETALL", "ZRANGE", "SMEMBERS", "LRANGE")


@contextmanager
def redis_errors(conn: RedisConnInfo, what: str) -> Iterator[None]:
    """redis-py errors as SourceError: unreachable or dropped is transient, refused is not."""
    where = conn.describe()
    try:
        yield
    except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as e:
        raise SourceError(f"Redis at {where} refused the credentials ({what}): {e}") from None
    except redis.BusyLoadingError as e:
        raise SourceError(f"Redis at {where} is loading its data ({what}): {e}", True) from None
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise SourceError(f"cannot reach Redis at {where} ({what}): {e}", transient=True) from None
    except redis.ResponseError as e:
        msg = str(e)
        if msg.startswith(("NOAUTH", "WRONGPASS")):
            raise SourceError(f"Redis at {where} refused the credentials ({what}): {e}") from None
        if msg.startswith("NOPERM"):
            raise SourceError(
                f"Redis at {where}: the user lacks a permission ({what}): {e}"
            ) from None
        raise SourceError(f"{what} on Redis at {where} failed: {e}") from None


def ping(conn: RedisConnInfo) -> None:
    """Fail at once (no retries) on a wrong address or password: SourceError."""
    client = conn.client(retries=0)
    try:
        with redis_errors(conn, "connecting"):
            client.ping()
    finally:
        client.close()


def raw_client(client: redis.Redis) -> redis.Redis:
    """The client with redis-py's reply parsing switched off where it loses information
    (stream entries as dicts drop repeated field names)."""
    for name in _FETCH_RAW:
        client.set_response_callback(name, lambda r, **_: r)
    return client


def reply_pairs(flat: list[Any] | dict[Any, Any]) -> dict[str, Any]:
    """An XINFO reply as a dict with str keys (redis-py parses some of them already)."""
    if isinstance(flat, dict):
        return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in flat.items()}
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): v
        for k, v in zip(flat[::2], flat[1::2], strict=True)
    }
