"""Deterministic, text-like generated streams for tests, benchmarks and the demo.

A stream of any size is produced in bounded memory: a pool of dump-like lines
(ids, timestamps, prose) is built once from the seed, and the stream is made of
64 KiB slices taken at pseudo-random offsets of that pool. Slices rarely repeat
within a chunk, so the data compresses like a real dump (~2.5x with zstd)
without deduplicating against itself.
"""

from __future__ import annotations

import random

_WORDS = [
    "retrieval",
    "augmented",
    "generation",
    "vector",
    "embedding",
    "transformer",
    "attention",
    "corpus",
    "citation",
    "scholar",
    "paper",
    "abstract",
    "method",
    "result",
    "dataset",
    "benchmark",
    "evaluation",
    "model",
    "training",
    "inference",
    "query",
    "document",
    "chunk",
    "index",
    "similarity",
    "cosine",
    "neighbour",
    "semantic",
    "lexical",
    "hybrid",
    "rerank",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "by",
    "this",
    "are",
    "be",
    "from",
    "at",
    "an",
    "it",
    "which",
    "we",
    "our",
    "these",
]


class GeneratedStream:
    """A readable, deterministic stream of ``size`` bytes."""

    SLICE = 64 * 1024

    def __init__(self, size: int, seed: int = 0, pool_size: int = 4 << 20) -> None:
        self.size = size
        self.pos = 0
        rng = random.Random(seed)
        lines = []
        total = 0
        i = 0
        while total < pool_size + self.SLICE:
            i += 1
            text = " ".join(rng.choices(_WORDS, k=rng.randint(8, 40)))
            line = (
                f"{i}\t{rng.randint(1, 10**9)}\t2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}\t"
                f"{rng.random():.6f}\t{text}\n"
            ).encode()
            lines.append(line)
            total += len(line)
        self._pool = b"".join(lines)
        self._rng = random.Random(seed + 1)
        self._pool_view = memoryview(self._pool)
        self._slice_start = 0
        self._slice_left = 0

    def readinto(self, b: memoryview | bytearray, /) -> int:
        """Fill ``b`` without allocating (how the store reads pipes and files)."""
        out = memoryview(b).cast("B")
        n = min(len(out), self.size - self.pos)
        done = 0
        while done < n:
            if not self._slice_left:
                self._slice_start = self._rng.randrange(0, len(self._pool) - self.SLICE)
                self._slice_left = self.SLICE
            take = min(n - done, self._slice_left)
            out[done : done + take] = self._pool_view[self._slice_start : self._slice_start + take]
            self._slice_start += take
            self._slice_left -= take
            done += take
        self.pos += n
        return n

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            n = self.size - self.pos
        buf = bytearray(min(n, self.size - self.pos))
        got = self.readinto(buf)
        return bytes(buf[:got])


class EditedStream:
    """``base`` with ``replace`` bytes overwritten by other bytes at ``offset``."""

    def __init__(self, base: GeneratedStream, offset: int, replace: bytes) -> None:
        self.base = base
        self.offset = offset
        self.replace = replace

    def read(self, n: int = -1, /) -> bytes:
        start = self.base.pos
        data = bytearray(self.base.read(n))
        lo = max(self.offset, start)
        hi = min(self.offset + len(self.replace), start + len(data))
        if lo < hi:
            data[lo - start : hi - start] = self.replace[lo - self.offset : hi - self.offset]
        return bytes(data)


class CompareSink:
    """A sink that checks every written byte against a reference stream."""

    def __init__(self, reference: GeneratedStream | EditedStream) -> None:
        self.reference = reference
        self.written = 0
        self.mismatch_at: int | None = None

    def write(self, data: bytes, /) -> int:
        expected = self.reference.read(len(data))
        if self.mismatch_at is None and expected != data:
            first = next(
                (i for i, (a, b) in enumerate(zip(expected, data, strict=False)) if a != b),
                min(len(expected), len(data)),
            )
            self.mismatch_at = self.written + first
        self.written += len(data)
        return len(data)

    @property
    def identical(self) -> bool:
        return self.mismatch_at is None and self.reference.read(1) == b""
