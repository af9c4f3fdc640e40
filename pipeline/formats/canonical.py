"""Canonical JSON for repository documents, checked against manifests/schema/ both ways.

Schemas are JSON Schema draft-07, compiled to Python code by fastjsonschema: a manifest of
100,000 chunks validates in a fraction of a second, where an interpreting validator takes
tens of seconds.
"""

from __future__ import annotations

import functools
import importlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Protocol, TypeVar

import fastjsonschema

from ..errors import DepotError, ManifestInvalid, NotFound

T = TypeVar("T")


class Reader(Protocol):
    """Anything documents are read from: a store, or a client's fetcher."""

    def get(self, key: str) -> bytes: ...

    def url_of(self, key: str) -> str: ...


@functools.lru_cache(maxsize=None)
def _validator(name: str) -> Callable[[dict], object]:
    package = importlib.import_module("depot_app.manifests")  # the schemas are files beside it
    text = (Path(str(package.__file__)).parent / "schema" / f"{name}.json").read_text()
    return fastjsonschema.compile(json.loads(text))


def validate(doc: dict, schema: str, where: str) -> dict:
    try:
        _validator(schema)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        at = "/".join(str(p) for p in exc.path[1:]) or "(top)"
        raise ManifestInvalid(f"{where}: not a valid {schema} document at {at}: {exc.message}") from None
    return doc


def dumps(doc: dict, schema: str, where: str) -> bytes:
    """Validated, canonical bytes: the same document always gives the same bytes."""
    validate(doc, schema, where)
    return canonical(doc)


def canonical(doc: dict) -> bytes:
    return (json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


_STEP = 1 << 14  # list items or string characters that ``buffer`` dumps at a time


def buffer(doc: dict) -> bytearray:
    """``canonical(doc)``, written a piece at a time into one buffer: a document whose
    columns hold a million items is held once, not as a str and then as bytes (a lost
    100 MB for a build of a million files)."""
    out = bytearray()
    write(out, doc)
    out += b"\n"
    return out


def write(out: bytearray, value) -> None:
    """The canonical JSON of ``value``, appended to ``out`` a piece at a time."""
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        out += b"{"
        for i, key in enumerate(sorted(value)):
            if i:
                out += b","
            out += dump(key) + b":"
            write(out, value[key])
        out += b"}"
    elif isinstance(value, (list, str)) and len(value) > _STEP:
        # a JSON list or string is its items' (or characters') JSON end to end
        out += b"[" if isinstance(value, list) else b'"'
        for i in range(0, len(value), _STEP):
            if i and isinstance(value, list):
                out += b","
            out += dump(value[i : i + _STEP])[1:-1]
        out += b"]" if isinstance(value, list) else b'"'
    else:
        out += dump(value)


def dump(value) -> bytes:
    """The canonical JSON of ``value``, without the newline that ends a document."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes, schema: str, where: str) -> dict:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{where}: not JSON ({exc})") from exc
    return validate(doc, schema, where)


D = TypeVar("D", bound="Document")


class Document(ABC):
    """A repository document: the subclass (a frozen dataclass) gives its schema,
    ``to_dict`` and ``from_dict``; its bytes, validated both ways, come from here."""

    SCHEMA: ClassVar[str]

    @abstractmethod
    def to_dict(self) -> dict:
        """The document as plain JSON values."""

    @classmethod
    @abstractmethod
    def from_dict(cls: type[D], d: dict) -> D:
        """The document from plain JSON values that passed its schema."""

    def describe(self) -> str:
        """What to call this document in an error."""
        return f"{self.SCHEMA} document"

    def to_bytes(self) -> bytes:
        """Canonical bytes: what is stored, served and signed."""
        return dumps(self.to_dict(), self.SCHEMA, self.describe())

    def to_bytes_known_valid(self) -> bytes:
        """Canonical bytes of a document that ``from_bytes`` read, and so validated: a
        frozen dataclass cannot have changed since, and a client writing the manifest it
        installed would otherwise validate its thousands of entries twice."""
        return canonical(self.to_dict())

    @classmethod
    def from_bytes(cls: type[D], data: bytes, where: str) -> D:
        doc = loads(data, cls.SCHEMA, where)
        try:
            return cls.from_dict(doc)
        except (DepotError, KeyError, TypeError, ValueError) as exc:  # valid JSON Schema, impossible values
            raise ManifestInvalid(f"{where}: not a valid {cls.SCHEMA} document: {exc}") from None


def read(reader: Reader, key: str, parse: Callable[[bytes, str], T], missing: str) -> T:
    """The document at ``key``, parsed and validated; ``missing`` is the NotFound message."""
    try:
        data = reader.get(key)
    except NotFound:
        raise NotFound(f"{missing} (no {reader.url_of(key)})") from None
    return parse(data, reader.url_of(key))
