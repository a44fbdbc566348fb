"""Chunking on paragraph and sentence boundaries, markdown headings starting a chunk."""

from __future__ import annotations

from scholar_ops.aischolar.chunking import chunk_text, sentences


def test_headings_start_a_chunk_and_stay_with_their_text():
    text = (
        "# Intro\nShort intro.\n\n" + ("A sentence about graphs. " * 60) + "\n\n# Methods\nWe test."
    )
    chunks = chunk_text(text, size=300)
    assert chunks[0].startswith("# Intro") and "Short intro." in chunks[0]
    assert chunks[-1] == "# Methods\nWe test."
    assert all(len(c) <= 300 for c in chunks)
    assert "".join(chunks).count("graphs") == 60  # nothing lost, nothing doubled


def test_long_paragraphs_split_on_sentence_boundaries():
    para = " ".join(f"Sentence number {i} ends here." for i in range(40))
    chunks = chunk_text(para, size=200)
    assert len(chunks) > 1
    assert all(c.endswith(".") for c in chunks)
    assert all(len(c) <= 200 for c in chunks)


def test_small_paragraphs_are_packed_together():
    text = "One.\n\nTwo.\n\nThree."
    assert chunk_text(text) == ["One.\nTwo.\nThree."]


def test_a_sentence_longer_than_a_chunk_is_cut():
    chunks = chunk_text("x" * 1200, size=500)
    assert [len(c) for c in chunks] == [500, 500, 200]


def test_empty_text_has_no_chunks():
    assert chunk_text("") == [] and chunk_text("\n\n  \n") == []


def test_sentences_drop_heading_marks():
    assert sentences("# Title\nFirst one. Second one?\n\nThird!") == [
        "Title",
        "First one.",
        "Second one?",
        "Third!",
    ]
