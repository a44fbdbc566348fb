"""Generated Redis values for tests and benchmarks: half random bytes (embeddings,
compressed payloads), half text slices (JSON-ish), so RDBs compress like real ones."""

from __future__ import annotations

import random

WORDS = b"retrieval augmented generation vector embedding attention corpus scholar paper".split()


def text_pool(rng: random.Random, size: int = 1 << 20) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.choice(WORDS) + b" " + str(rng.randrange(10**6)).encode() + b" "
    return bytes(out)


def value(rng: random.Random, n: int, pool: bytes) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(n)
    start = rng.randrange(len(pool) - n)
    return pool[start : start + n]
