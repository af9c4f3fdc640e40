"""Ed25519 signing keys: generated into files, loaded back, and found by key id.

A key is two files: ``NAME.key``, the private key (PKCS#8 PEM, readable by its owner only,
created exclusively so that an existing key is never overwritten), and ``NAME.pub``, the
public key as TUF writes it in metadata (JSON, with its key id). A keyring is the private
keys of a directory: a signing step takes from it the keys that the metadata names for the
role it signs, so file names are the operator's own business.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from ..errors import InvalidArgument, SigningKeyMissing

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class KeyFiles:
    name: str
    private: Path
    public: Path
    keyid: str


def generate(out: Path, names: list[str]) -> list[KeyFiles]:
    """New Ed25519 keys ``out/NAME.key`` and ``out/NAME.pub``; refuses to overwrite a key."""
    out = Path(out)
    for name in names:
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid key name {name!r}: letters, digits, '.', '_', '-'")
        for path in (out / f"{name}.key", out / f"{name}.pub"):
            if path.exists():
                raise InvalidArgument(f"{path} exists: a key is never overwritten (choose another name)")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for name in names:
        signer = CryptoSigner.generate_ed25519()
        private, public = out / f"{name}.key", out / f"{name}.pub"
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_bytes)
        key = signer.public_key
        public.write_text(json.dumps({"keyid": key.keyid, **key.to_dict()}, sort_keys=True, indent=1) + "\n")
        made.append(KeyFiles(name, private, public, key.keyid))
    return made


def load_signer(path: str | os.PathLike) -> CryptoSigner:
    """The private key in ``path`` (a ``.key`` file)."""
    try:
        data = Path(path).read_bytes()
        return CryptoSigner(load_pem_private_key(data, password=None))
    except OSError as exc:
        raise SigningKeyMissing(f"{path}: cannot read the key ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{path}: not an unencrypted PEM private key ({exc})") from None


def load_public(path: str | os.PathLike) -> Key:
    """The public key in ``path``: a ``.pub`` file, or the public half of a ``.key`` file."""
    path = Path(path)
    if path.suffix == ".key":
        return load_signer(path).public_key
    try:
        d = json.loads(path.read_text())
        return SSlibKey.from_dict(d.pop("keyid"), d)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the public key ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"{path}: not a depot public key file ({exc})") from None


class Keyring:
    """The private keys in a directory (``*.key``), by key id."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = Path(directory) if directory else None
        self._signers: dict[str, CryptoSigner] = {}
        if self.directory is not None:
            if not self.directory.is_dir():
                raise SigningKeyMissing(f"{self.directory}: no such keys directory")
            for path in sorted(self.directory.glob("*.key")):
                signer = load_signer(path)
                self._signers[signer.public_key.keyid] = signer

    def __bool__(self) -> bool:
        return bool(self._signers)

    def add(self, signer: CryptoSigner) -> None:
        self._signers[signer.public_key.keyid] = signer

    def has_any(self, keyids) -> bool:
        return any(k in self._signers for k in keyids)

    def signers(self, keyids, role: str) -> list[CryptoSigner]:
        """The keyring's keys among ``keyids`` (those the metadata trusts for ``role``)."""
        found = [self._signers[k] for k in keyids if k in self._signers]
        if not found:
            where = self.directory or "the keys given (none: --keys DIR)"
            raise SigningKeyMissing(f"no key for the {role} role in {where}: it needs one of {sorted(keyids)}")
        return found
