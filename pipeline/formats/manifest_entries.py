"""A manifest's entries: files, links and directories, and the chunks a file's bytes are in.

Format 1 lists these entries one by one. Format 2 makes them from its columns
(formats.manifest_columns) only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .inventory import BuildEntry

FORMAT_1 = "depot.manifest/1"  # the format that lists entries one by one


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of the store: ``size`` bytes, whose object is ``stored_size`` bytes long,
    sealed with the content key ``key_id`` ("" for a plain chunk; see formats.sealed)."""

    id: str
    size: int
    stored_size: int
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A slice of a file: its ``size`` bytes at ``offset`` are the bytes at
    ``chunk_offset`` of chunk ``id`` (``chunk_size`` bytes, an object of ``stored_size``).
    A file cut on its own holds whole chunks: ``chunk_offset`` 0, ``chunk_size == size``."""

    offset: int
    size: int
    id: str
    stored_size: int
    chunk_offset: int = 0
    chunk_size: int = -1  # -1: the whole chunk, ``size`` bytes
    key_id: str = ""  # the content key its chunk is sealed with; "" for a plain chunk

    def __post_init__(self) -> None:
        if self.chunk_size < 0:
            object.__setattr__(self, "chunk_size", self.size)

    @property
    def whole(self) -> bool:
        return self.chunk_offset == 0 and self.size == self.chunk_size

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.id, self.chunk_size, self.stored_size, self.key_id)

    def to_dict(self) -> dict:
        if not self.whole or self.key_id:
            raise ValueError(f"a {'sealed chunk' if self.key_id else 'slice of chunk'} {self.id} has no form in "
                             f"{FORMAT_1}")
        return {"offset": self.offset, "size": self.size, "id": self.id, "stored_size": self.stored_size}


@dataclass(frozen=True, slots=True)
class FileEntry(BuildEntry):
    """A manifest entry; a file's ``chunks`` tile it in order."""

    chunks: tuple[ChunkRef, ...] = ()

    def to_dict(self) -> dict:
        return self._dict(chunks=[c.to_dict() for c in self.chunks])

    @classmethod
    def from_dict(cls, d: dict) -> "FileEntry":
        chunks = tuple(ChunkRef(**c) for c in d.get("chunks", ()))
        return cls(**{**d, "chunks": chunks})
