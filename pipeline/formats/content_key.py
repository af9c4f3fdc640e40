"""A content key (``content-key-1``): the AES-256-GCM key that seals an embargoed version's
new content (see formats.sealed), with the product and version it was made for.

The same document serves twice. On the release side it is the key's file
(``trust.content_keys``), never on an origin before release. Once released, it is the
signed key players read, ``products/<P>/keys/<key id>.json``, then with ``released_at``.
Its id is derived from the key. A document whose key is not the one its id names is
refused.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .. import layout
from ..errors import ManifestInvalid
from .canonical import Document

if TYPE_CHECKING:  # cryptography is imported where a key is used: most commands never do
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEMA = "content-key-1"
FORMAT = "depot.content-key/1"
ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
ID_BYTES = 16


def key_id_of(key: bytes) -> str:
    """A key's id: the start of a SHA-256 of it (a name, which says nothing of the key)."""
    return hashlib.sha256(FORMAT.encode() + b"\0" + key).hexdigest()[: 2 * ID_BYTES]


@dataclass(frozen=True)
class ContentKey(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    key: bytes = field(repr=False)
    released_at: str = ""  # UTC, ISO 8601 to the second; "" while not released

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a content key is {KEY_BYTES} bytes, not {len(self.key)}")

    @classmethod
    def generate(cls, product: str, version: str) -> "ContentKey":
        """A new random key for ``product`` ``version``."""
        return cls(layout.check_product(product), layout.check_version(version), os.urandom(KEY_BYTES))

    @property
    def key_id(self) -> str:
        return key_id_of(self.key)

    @functools.cached_property
    def cipher(self) -> "AESGCM":
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self.key)

    def released(self, at: str) -> "ContentKey":
        """The document published at release."""
        return ContentKey(self.product, self.version, self.key, at)

    def describe(self) -> str:
        return f"content key of {self.product} {self.version}"

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "product": self.product, "version": self.version, "key_id": self.key_id,
             "algorithm": ALGORITHM, "key": base64.b64encode(self.key).decode()}
        if self.released_at:
            d["released_at"] = self.released_at
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ContentKey":
        key = cls(d["product"], d["version"], base64.b64decode(d["key"], validate=True), d.get("released_at", ""))
        if key.key_id != d["key_id"]:
            raise ManifestInvalid(f"key id {d['key_id']} is not the id of the key it holds ({key.key_id})")
        return key


def new_nonce() -> bytes:
    """A fresh 96-bit nonce, never derived from anything: one per sealed object."""
    return os.urandom(12)
