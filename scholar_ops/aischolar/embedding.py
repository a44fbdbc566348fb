"""A deterministic local embedding (no model download): hashed word and word-pair
features with signs, L2-normalised, in 64 dimensions. Texts sharing words are near."""

from __future__ import annotations

import hashlib
import math
import re

DIMENSION = 64
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _bucket(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % DIMENSION, (1.0 if (value >> 32) & 1 else -1.0)


def embed_one(text: str) -> list[float]:
    vec = [0.0] * DIMENSION
    words = tokens(text)
    for i, word in enumerate(words):
        index, sign = _bucket(word)
        vec[index] += sign
        if i:
            index, sign = _bucket(words[i - 1] + " " + word)
            vec[index] += 0.5 * sign
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]


def embed(texts: list[str]) -> list[list[float]]:
    return [embed_one(t) for t in texts]
