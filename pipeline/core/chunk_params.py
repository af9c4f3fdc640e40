"""A product's chunk sizes: what content-defined chunking cuts with (core.cdc), and what
every manifest records. Kept apart from the chunker so that reading a manifest loads no
chunking code."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgument

KiB, MiB = 1 << 10, 1 << 20


@dataclass(frozen=True)
class ChunkParams:
    min_size: int = 256 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 4 * MiB
    segment_size: int = 0  # 0: automatic; a tuning knob, not part of the chunking result

    def __post_init__(self):
        sizes = f"min {self.min_size}, avg {self.avg_size}, max {self.max_size} bytes"
        if not (64 <= self.min_size <= self.avg_size <= self.max_size):
            raise InvalidArgument(f"chunk sizes must satisfy 64 <= min <= avg <= max, got {sizes}")
        if not (256 <= self.avg_size <= 4 * MiB and self.min_size <= MiB and 1024 <= self.max_size <= 16 * MiB):
            raise InvalidArgument(f"chunk sizes out of range (avg 256 B..4 MiB, min <= 1 MiB, max 1 KiB..16 MiB): {sizes}")
        if self.segment_size and self.segment_size < 4 * self.max_size:
            raise InvalidArgument(f"segment size {self.segment_size} must be at least 4 x the max chunk size ({self.max_size})")

    @property
    def segment(self) -> int:
        """Files larger than this are cut by several tasks. Large enough that stitching
        costs little, small enough that a task's buffer stays a few tens of MB."""
        return self.segment_size or max(64 * MiB, 16 * self.max_size)

    @property
    def overlap(self) -> int:
        """How far a segment's chain runs into the next segment, to meet its chain."""
        return 2 * self.max_size

    def to_dict(self) -> dict:
        return {"min_size": self.min_size, "avg_size": self.avg_size, "max_size": self.max_size}
