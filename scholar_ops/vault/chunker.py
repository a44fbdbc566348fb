"""Content-defined chunking of a byte stream (FastCDC 2020, via pyfastcdc).

Boundaries depend on content, not offsets, so an insert in the middle of a dump
changes only the chunks around it. The gear table is seeded per repository so
chunk sizes do not fingerprint known files.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class ReadsInto(Protocol):
    def readinto(self, b: memoryview, /) -> int: ...


Source = Readable | ReadsInto | BinaryIO
"""Anything with ``readinto`` (preferred: no copy) or ``read``."""


@dataclass(frozen=True)
class ChunkerParams:
    avg_size: int = 1 << 20
    min_size: int = 256 << 10
    max_size: int = 4 << 20

    def to_json(self) -> dict[str, int]:
        return {"avg_size": self.avg_size, "min_size": self.min_size, "max_size": self.max_size}


class Chunker:
    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        # pyfastcdc's avg_size excludes min_size (cut-point skipping): subtract it
        # so the real average is what params say.
        from pyfastcdc import FastCDC  # here: opening a repository needs no chunker

        self._cdc = FastCDC(
            avg_size=max(256, params.avg_size - params.min_size),
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=1,
            seed=seed % (1 << 31),
        )

    def chunks(self, stream: Source, read_size: int = 8 << 20) -> Iterator[memoryview]:
        """Yield chunks as read-only views, valid for as long as the caller keeps them.

        Reads ``read_size`` blocks (with ``readinto`` where the stream has it, so a
        pipe's data is copied once) and cuts each in one call, several times faster
        than pyfastcdc's per-chunk stream reader. Chunks are views into the block,
        not copies; only the unfinished tail is copied into the next block.
        Memory: the blocks still referenced by chunks in flight. A block nobody
        references any more is reused, which saves the page faults of fresh memory.
        """
        read_size = max(read_size, 2 * self.params.max_size)
        block_size = read_size + self.params.max_size
        readinto = getattr(stream, "readinto", None)
        spare: list[bytearray] = []
        carry = b""
        eof = False
        first = True
        while not eof:
            if first:
                # The first block of a stream is small: most files are, and a fresh
                # 12 MiB zero-filled buffer per small file would dominate their cost.
                block = bytearray(min(block_size, 1 << 20))
                first = False
            else:
                block = _reusable(spare) or bytearray(block_size)
                spare.append(block)
                if len(spare) > 8:
                    spare.pop(0)
            view = memoryview(block)[: min(len(block), len(carry) + read_size)]
            view[: len(carry)] = carry
            filled = len(carry)
            while filled < len(view):
                if readinto is not None:
                    n = readinto(view[filled:])
                else:
                    data = stream.read(len(view) - filled)  # type: ignore[union-attr]
                    n = len(data)
                    view[filled : filled + n] = data
                if not n:
                    eof = True
                    break
                filled += n
            if not filled:
                break
            data_view = view[:filled].toreadonly()
            cuts = [(c.offset, c.length) for c in self._cdc.cut_buf(data_view)]
            # Without EOF the final cut is where the data ran out, not a content boundary.
            last = len(cuts) if eof else len(cuts) - 1
            for offset, length in cuts[:last]:
                yield data_view[offset : offset + length]
            if not eof:
                carry = bytes(data_view[cuts[-1][0] :])


def _reusable(blocks: list[bytearray]) -> bytearray | None:
    """The oldest block that no chunk view references any more, if any."""
    for block in blocks:
        # References: the list, the loop variable and getrefcount's argument.
        # Any memoryview of the block still alive adds one more.
        if sys.getrefcount(block) <= 3:
            blocks.remove(block)
            return block
    return None
