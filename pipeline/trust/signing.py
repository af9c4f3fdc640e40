"""Signing what a command writes, in a signed repository.

A command that writes a product's documents asks for a signer before any work. The keys
are checked then, so that missing keys stop it before it writes anything. Once the
documents are written, the signer signs them. In an unsigned repository the signer does
nothing, and python-tuf is never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import is_signed
from ..storage import WriteStore

if TYPE_CHECKING:
    from .keys import Keyring, Passphrase
    from .repository import Commit


def online_keyring(store: WriteStore, directory: str | Path | None,
                   passphrase: Passphrase | None = None) -> Keyring:
    """The private keys in ``directory`` that commands sign with. The repository's offline
    root keys are left out (``skipped`` lists their files). A root key that an online role
    also uses is kept, or nothing could be signed."""
    from . import repository
    from .keys import Keyring, passphrase_from_env

    return Keyring(directory, repository.offline_keyids(store), passphrase or passphrase_from_env)


def signer(store: WriteStore, keyring: Callable[[], Keyring], product: str) -> Callable[[], Commit | None]:
    """The step that signs ``product``'s documents once they are written. The keyring is
    asked for and checked now: it must hold the keys for the product, snapshot and
    timestamp roles. In an unsigned repository the step does nothing and returns None."""
    if not is_signed(store):
        return lambda: None
    from . import repository

    ring = keyring()
    repository.check_can_sign(store, ring, product)
    return lambda: repository.sign_documents(store, ring, product)
