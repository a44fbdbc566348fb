"""Per-chunk compression: zstd (default) or gzip, or stored as is.

The first byte of a blob's plaintext names the algorithm, so a repository can
mix algorithms and a change of setting needs no migration.
"""

from __future__ import annotations

import threading
import zlib
from enum import IntEnum

import zstandard

from scholar_ops.vault.errors import ConfigError


class Algorithm(IntEnum):
    NONE = 0
    ZSTD = 1
    GZIP = 2


class Compressor:
    """Thread-safe: each thread gets its own zstd context (contexts are not shareable)."""

    def __init__(self, name: str = "zstd", level: int | None = None) -> None:
        try:
            self.algorithm = {
                "zstd": Algorithm.ZSTD,
                "gzip": Algorithm.GZIP,
                "none": Algorithm.NONE,
            }[name]
        except KeyError:
            raise ConfigError(f"unknown compression {name!r}: choose zstd, gzip or none") from None
        self.name = name
        self.level = level if level is not None else {"zstd": 1, "gzip": 6, "none": 0}[name]
        self._local = threading.local()

    def compress(self, data: bytes | memoryview) -> tuple[Algorithm, bytes | memoryview]:
        """Return (algorithm, body); the data itself when compression does not help."""
        if self.algorithm is Algorithm.ZSTD:
            ctx = getattr(self._local, "zstd", None)
            if ctx is None:
                ctx = self._local.zstd = zstandard.ZstdCompressor(level=self.level)
            body = ctx.compress(data)
        elif self.algorithm is Algorithm.GZIP:
            body = zlib.compress(data, self.level, wbits=31)
        else:
            return Algorithm.NONE, data
        if len(body) >= len(data):
            return Algorithm.NONE, data
        return self.algorithm, body


_dctx = threading.local()


def decompress(alg: int, body: bytes, raw_length: int) -> bytes:
    if alg == Algorithm.NONE:
        return body
    if alg == Algorithm.ZSTD:
        ctx = getattr(_dctx, "zstd", None)
        if ctx is None:
            ctx = _dctx.zstd = zstandard.ZstdDecompressor()
        out: bytes = ctx.decompress(body, max_output_size=raw_length)
        return out
    if alg == Algorithm.GZIP:
        return zlib.decompress(body, wbits=31)
    raise ValueError(f"unknown compression algorithm {alg}")
