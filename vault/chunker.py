"""Content-defined chunking of a byte stream (FastCDC 2020, via pyfastcdc).

Boundaries depend on content, not offsets, so an insert in the middle of a dump
changes only the chunks around it. The gear table is seeded per repository so
chunk sizes do not fingerprint known files.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from pyfastcdc import FastCDC


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


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
        self._cdc = FastCDC(
            avg_size=max(256, params.avg_size - params.min_size),
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=1,
            seed=seed % (1 << 31),
        )

    def chunks(self, stream: Readable | BinaryIO) -> Iterator[bytes]:
        """Yield chunks as independent bytes objects (safe to keep after the next one)."""
        for chunk in self._cdc.cut_stream(stream):
            yield bytes(chunk.data)
