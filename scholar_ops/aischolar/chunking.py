"""Split a document into chunks of about ``size`` characters on paragraph, then
sentence boundaries; a markdown heading starts a new chunk and stays with its text."""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _pieces(text: str, size: int) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            out.append(para)
            continue
        for sentence in _SENTENCE.split(para):
            while len(sentence) > size:
                out.append(sentence[:size])
                sentence = sentence[size:]
            if sentence.strip():
                out.append(sentence.strip())
    return out


def chunk_text(text: str, size: int = 500) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, size):
        heading = piece.lstrip().startswith("#")
        if current and (heading or len(current) + 1 + len(piece) > size):
            chunks.append(current)
            current = ""
        current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def sentences(text: str) -> list[str]:
    parts: list[str] = []
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            parts.extend(s.strip() for s in _SENTENCE.split(line) if s.strip())
    return parts
