"""Ed25519 signing keys: generated into files, loaded back, and found by key id.

A key is two files. ``NAME.key`` is the private key: PKCS#8 PEM, mode 0600, in a
directory of mode 0700. It is created exclusively, so an existing key is never
overwritten. It may be encrypted with a passphrase. ``NAME.pub`` is the public key as
TUF writes it in metadata: JSON with its key id, mode 0644.

A keyring is the private keys of a directory. A signing step takes from it the keys the
metadata names for the role it signs, so file names are the operator's own business. A
keyring leaves out the repository's root keys that no online role uses. They stay
offline, and are given by name to the commands that need them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (BestAvailableEncryption, Encoding, NoEncryption,
                                                          PrivateFormat, load_pem_private_key)
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from ..errors import InvalidArgument, SigningKeyMissing, SigningKeyRefused, StoreUnavailable
from .key_files import check_private as _check_private
from .key_files import create as _create
from .key_files import remove_made

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PASSPHRASE_ENV = "DEPOT_KEY_PASSPHRASE"

# Asked for the passphrase of an encrypted key file; None when there is none to give.
Passphrase = Callable[[Path], "bytes | None"]


def passphrase_from_env(path: Path) -> bytes | None:
    """The passphrase in ``$DEPOT_KEY_PASSPHRASE``, if set."""
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


@dataclass(frozen=True)
class KeyFiles:
    name: str
    private: Path
    public: Path
    keyid: str
    encrypted: bool = False


def generate(out: Path, names: list[str], passphrase: bytes | None = None) -> list[KeyFiles]:
    """New Ed25519 keys ``out/NAME.key`` (0600) and ``out/NAME.pub`` (0644), ``out`` made
    0700 if new; refuses to overwrite a key. With ``passphrase``, the private keys are
    encrypted with it. On a failure, the files and directories this call made are removed."""
    out = Path(out)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # the second file of a name would find the first and fail half-way
        raise InvalidArgument(f"key name {twice[0]!r} given twice: each key needs a name of its own")
    for name in names:
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid key name {name!r}: letters, digits, '.', '_', '-'")
        for path in (out / f"{name}.key", out / f"{name}.pub"):
            if path.exists():
                raise InvalidArgument(f"{path} exists: a key is never overwritten (choose another name)")
    if passphrase is not None and not passphrase:
        raise InvalidArgument("the passphrase is empty: give one, or none for keys that are not encrypted")
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    made: list[KeyFiles] = []
    written: list[Path] = []
    new_dirs = [d for d in (out, *out.parents) if not d.exists()]  # innermost first, removed on a failure
    try:
        if not out.is_dir():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.mkdir(mode=0o700)
            os.chmod(out, 0o700)  # whatever the umask
        for name in names:
            private_key = Ed25519PrivateKey.generate()
            key = CryptoSigner(private_key).public_key
            private, public = out / f"{name}.key", out / f"{name}.pub"
            _create(private, private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption), 0o600, written)
            text = json.dumps({"keyid": key.keyid, **key.to_dict()}, sort_keys=True, indent=1) + "\n"
            _create(public, text.encode(), 0o644, written)
            made.append(KeyFiles(name, private, public, key.keyid, bool(passphrase)))
    except OSError as exc:
        remove_made(written, new_dirs)
        raise StoreUnavailable(f"{out}: cannot write keys there ({exc.strerror})") from None
    return made


def load_signer(path: str | os.PathLike, passphrase: Passphrase = passphrase_from_env) -> CryptoSigner:
    """The private key in ``path`` (a ``.key`` file). Refused when group or others may read
    the file; an encrypted key is opened with what ``passphrase(path)`` gives."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if b"PRIVATE KEY-----" not in data:
            raise InvalidArgument(f"{path}: not a PEM private key")
        _check_private(path)
    except OSError as exc:
        raise SigningKeyMissing(f"{path}: cannot read the key ({exc.strerror})") from None
    secret = None
    if b"ENCRYPTED PRIVATE KEY" in data:
        secret = passphrase(path)
        if not secret:
            raise SigningKeyRefused(f"{path}: the key is encrypted: set {PASSPHRASE_ENV} to its passphrase, "
                                    "or run on a terminal to be asked for it")
    try:
        return CryptoSigner(load_pem_private_key(data, password=secret))
    except (ValueError, TypeError) as exc:
        if secret:
            raise SigningKeyRefused(f"{path}: wrong passphrase for the encrypted key") from None
        raise InvalidArgument(f"{path}: not a PEM private key ({exc})") from None


def load_public(path: str | os.PathLike, passphrase: Passphrase = passphrase_from_env) -> Key:
    """The public key in ``path``: a ``.pub`` file, or the public half of a ``.key`` file."""
    path = Path(path)
    if path.suffix == ".key":
        return load_signer(path, passphrase).public_key
    try:
        d = json.loads(path.read_text())
        return SSlibKey.from_dict(d.pop("keyid"), d)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read the public key ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidArgument(f"{path}: not a depot public key file ({exc})") from None


def _keyid_beside(private: Path) -> str | None:
    """The key id of ``NAME.pub`` beside ``NAME.key``, if there is a readable one."""
    try:
        return json.loads(private.with_suffix(".pub").read_text())["keyid"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Keyring:
    """The private keys in a directory (``*.key``), by key id, leaving out those whose key
    id is in ``exclude`` (the repository's offline root keys: ``skipped`` lists their files). A
    key whose ``NAME.pub`` is beside it is read only when a role needs it, so that an
    encrypted key asks for its passphrase only then, and an excluded one is never read."""

    def __init__(self, directory: str | os.PathLike | None, exclude=frozenset(),
                 passphrase: Passphrase = passphrase_from_env):
        self.directory = Path(directory) if directory else None
        self.skipped: list[Path] = []
        self._passphrase = passphrase
        self._signers: dict[str, CryptoSigner] = {}
        self._files: dict[str, Path] = {}  # key id -> a key file not read yet
        if self.directory is not None:
            if not self.directory.is_dir():
                raise SigningKeyMissing(f"{self.directory}: no such keys directory")
            for path in sorted(self.directory.glob("*.key")):
                keyid = _keyid_beside(path)
                if keyid is None:
                    signer = load_signer(path, passphrase)
                    keyid = signer.public_key.keyid
                    if keyid not in exclude:
                        self._signers[keyid] = signer
                if keyid in exclude:
                    self.skipped.append(path)
                elif keyid not in self._signers:
                    try:
                        _check_private(path)
                    except OSError as exc:
                        raise SigningKeyMissing(f"{path}: cannot read the key ({exc.strerror})") from None
                    self._files[keyid] = path

    def __bool__(self) -> bool:
        return bool(self._signers or self._files)

    def add(self, signer: CryptoSigner) -> None:
        self._signers[signer.public_key.keyid] = signer

    def has_any(self, keyids) -> bool:
        return any(k in self._signers or k in self._files for k in keyids)

    def _signer(self, keyid: str) -> CryptoSigner:
        if keyid not in self._signers:
            path = self._files.pop(keyid)
            signer = load_signer(path, self._passphrase)
            if signer.public_key.keyid != keyid:
                raise SigningKeyRefused(f"{path}: not the key of {path.with_suffix('.pub')} beside it "
                                        f"(key id {signer.public_key.keyid}, not {keyid})")
            self._signers[keyid] = signer
        return self._signers[keyid]

    def signers(self, keyids, role: str) -> list[CryptoSigner]:
        """The keyring's keys among ``keyids`` (those the metadata trusts for ``role``)."""
        found = [self._signer(k) for k in keyids if k in self._signers or k in self._files]
        if not found:
            where = self.directory or "the keys given (none: --keys DIR)"
            raise SigningKeyMissing(f"no key for the {role} role in {where}: it needs one of {sorted(keyids)}")
        return found
