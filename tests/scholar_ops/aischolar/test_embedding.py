"""The deterministic hashing embedding: same text, same vector; 64 dimensions, unit length."""

from __future__ import annotations

import math
import subprocess
import sys

from scholar_ops.aischolar.embedding import DIMENSION, embed, embed_one, tokens


def _cos(x: list[float], y: list[float]) -> float:
    return sum(p * q for p, q in zip(x, y, strict=True))


def test_vectors_have_the_dimension_and_unit_length():
    for v in embed(["graph neural networks", "a", "Ünïcode wörds 42", ""]):
        assert len(v) == DIMENSION == 64
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-9)


def test_same_text_same_vector_even_in_another_process():
    text = "Retrieval augmented generation cites its sources."
    assert embed_one(text) == embed_one(text) == embed([text])[0]
    # no per-process randomness (Python's str hash is salted; the embedding must not use it)
    code = f"from scholar_ops.aischolar.embedding import embed_one;print(repr(embed_one({text!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert eval(out) == embed_one(text)


def test_texts_sharing_words_are_nearer_than_unrelated_ones():
    a, b, c = embed(["graph neural networks", "neural networks on graphs", "tomato soup recipe"])
    assert _cos(a, b) > _cos(a, c)
    assert _cos(a, a) > _cos(a, b)


def test_tokens_are_lowercase_words():
    assert tokens("Hello, World! RAG-2024") == ["hello", "world", "rag", "2024"]
