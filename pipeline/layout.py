"""Every key of the repository layout is named here, and only here (see docs/format.md).

Keys are relative POSIX paths. Chunks are content-addressed by the lowercase hex BLAKE3 of
their uncompressed bytes, sharded by the first two hex digits (256 shards: see
docs/format.md for why not more).
"""

from __future__ import annotations

import re

from .errors import InvalidKey

CHUNK_PREFIX = "chunks/"
PATCH_PREFIX = "patches/"
PRODUCT_PREFIX = "products/"
STAGING_PREFIX = "staging/"
METADATA_PREFIX = "metadata/"
TRUST_SETTINGS_KEY = "trust.json"
STORE_MARKER_KEY = "depot.json"  # says "a depot store": gc deletes nowhere else
STATS_PREFIX = "stats/"
PUBLISH_LOG_PREFIX = "logs/publishes/"

_PRODUCT = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_CHUNK_ID = re.compile(r"[0-9a-f]{64}")
_CONTENT_KEY_ID = re.compile(r"[0-9a-f]{32}")
_KEY_PART = re.compile(r"[A-Za-z0-9._+=-]+")  # "=": hive partitions of the stats (product=P)


def _matched(pattern: re.Pattern, value: str, what: str, rule: str = "") -> str:
    """``value`` if ``pattern`` matches all of it; else InvalidKey naming ``what`` and the rule."""
    if not pattern.fullmatch(value or ""):
        raise InvalidKey(f"invalid {what} {value!r}" + (f": {rule}" if rule else ""))
    return value


def check_product(product: str) -> str:
    return _matched(_PRODUCT, product, "product name", "a lowercase letter or digit first, then lowercase "
                    "letters, digits, '.', '_', '-' (128 at most)")


def check_version(version: str) -> str:
    return _matched(_VERSION, version, "version", "a letter or digit first, then letters, digits, '.', '_', "
                    "'+', '-' (128 at most)")


def check_names(product: str, *versions: str | None) -> None:
    """A product's name and versions' (None or empty: not given), as a request names them."""
    check_product(product)
    for version in versions:
        if version:
            check_version(version)


def check_chunk_id(chunk_id: str) -> str:
    return _matched(_CHUNK_ID, chunk_id, "chunk id", "expected 64 lowercase hex digits")


def check_key(key: str) -> str:
    """A store key: relative, '/'-separated, no empty, '.' or '..' parts."""
    parts = key.split("/") if key else []
    if not parts or any(p in (".", "..") or not _KEY_PART.fullmatch(p) for p in parts):
        raise InvalidKey(f"invalid store key {key!r}")
    return key


def chunk_key(chunk_id: str, key_id: str = "") -> str:
    """A chunk's object; sealed with content key ``key_id`` (an embargoed version's), under
    a name of its own, ``<id>.<key id>``: a chunk sealed for one release never stands in
    for the plain chunk, or for the chunk sealed for another."""
    check_chunk_id(chunk_id)
    if key_id:
        return f"{CHUNK_PREFIX}{chunk_id[:2]}/{chunk_id}.{check_content_key_id(key_id)}"
    return f"{CHUNK_PREFIX}{chunk_id[:2]}/{chunk_id}"


def patch_key(patch_id: str) -> str:
    """Patches are content-addressed like chunks: BLAKE3 of the patch bytes."""
    check_chunk_id(patch_id)
    return f"{PATCH_PREFIX}{patch_id[:2]}/{patch_id}"


def plan_key(product: str, from_version: str, to_version: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/plans/{check_version(from_version)}/{check_version(to_version)}.json"


def plans_prefix(product: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/plans/"


def plan_index_key(product: str) -> str:
    """Every plan of a product with its download size: what a client needs to choose a
    path (direct, a chain, or chunks) without listing the origin."""
    return f"{PRODUCT_PREFIX}{check_product(product)}/plans/index.json"


def product_config_key(product: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/product.json"


def version_prefix(product: str, version: str) -> str:
    """Where a version's documents (inventory, manifest, their hashed copies) are."""
    return f"{PRODUCT_PREFIX}{check_product(product)}/versions/{check_version(version)}/"


def inventory_key(product: str, version: str) -> str:
    return f"{version_prefix(product, version)}inventory.json"


def manifest_key(product: str, version: str) -> str:
    return f"{version_prefix(product, version)}manifest.json"


def versions_prefix(product: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/versions/"


def preload_key(product: str, version: str) -> str:
    """What an embargoed version's players download before release: its objects, by name
    and size (its manifest is sealed, and names files)."""
    return f"{version_prefix(product, version)}preload.json"


def release_key(product: str, version: str) -> str:
    """When an embargoed version is (or was) released, and with which content key."""
    return f"{version_prefix(product, version)}release.json"


def content_keys_prefix(product: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/keys/"


def check_content_key_id(key_id: str) -> str:
    return _matched(_CONTENT_KEY_ID, key_id, "content key id", "expected 32 lowercase hex digits")


def content_key_key(product: str, key_id: str) -> str:
    """A released content key, by its id: objects sealed with it stay readable after the
    version that sealed them is retired (a later version may name them)."""
    return f"{content_keys_prefix(product)}{check_content_key_id(key_id)}.json"


def channels_prefix(product: str) -> str:
    return f"{PRODUCT_PREFIX}{check_product(product)}/channels/"


def channel_key(product: str, channel: str) -> str:
    """The pointer naming the version a channel (stable, beta, ...) delivers."""
    _matched(_PRODUCT, channel, "channel name", "use lowercase letters, digits, '.', '_', '-'")
    return f"{PRODUCT_PREFIX}{check_product(product)}/channels/{channel}.json"


def metadata_key(role: str, version: int | None = None) -> str:
    """TUF metadata: ``metadata/<version>.<role>.json`` (consistent snapshots), or
    ``metadata/timestamp.json``, the one file without a version."""
    _matched(_PRODUCT, role, "role name")
    return f"{METADATA_PREFIX}{role}.json" if version is None else f"{METADATA_PREFIX}{int(version)}.{role}.json"


def hashed_target_key(key: str, sha256: str) -> str:
    """Where a signed document is also stored under its SHA-256 (``dir/<sha256>.<name>``), as
    TUF's consistent snapshots name targets: such a copy never changes, so a CDN may cache
    it for ever."""
    check_chunk_id(sha256)
    head, _, name = check_key(key).rpartition("/")
    return f"{head}/{sha256}.{name}" if head else f"{sha256}.{name}"


_HASHED = re.compile(r"[0-9a-f]{64}\.")


def is_hashed_copy(key: str) -> bool:
    return bool(_HASHED.match(key.rsplit("/", 1)[-1]))


def plain_key_of(key: str) -> str:
    """The document a copy under its hash is a copy of (``dir/<sha256>.name`` -> ``dir/name``);
    any other key is itself."""
    if not is_hashed_copy(key):
        return key
    head, _, name = key.rpartition("/")
    name = name.split(".", 1)[1]
    return f"{head}/{name}" if head else name


def publish_record_key(product: str, record_id: str) -> str:
    return f"{PUBLISH_LOG_PREFIX}{check_product(product)}/{record_id}.json"


def staged_pack_key(product: str, version: str) -> str:
    """Where an archive's file contents are unpacked for random access while chunking."""
    return f"{STAGING_PREFIX}{check_product(product)}/{check_version(version)}/pack"


# -- reading keys back: the inverse of the builders above --------------------------------

_TEMPORARY = re.compile(r"\.(.+)\.[^.]+\.tmp")  # a write in progress beside its key: .NAME.UNIQUE.tmp
_VERSION_DOCUMENTS = ("manifest.json", "inventory.json", "release.json", "preload.json")


def is_depot_key(key: str) -> bool:
    """Whether ``key`` is one that depot's layout names (or a temporary of one): the only
    keys gc may delete. Anything else in a store (a file someone put there, even under
    ``chunks/``) is never deleted."""
    head, _, name = key.rpartition("/")
    temporary = _TEMPORARY.fullmatch(name)
    if temporary:
        key = f"{head}/{temporary.group(1)}" if head else temporary.group(1)
    try:
        if key.startswith(CHUNK_PREFIX):
            return chunk_key(*key.rsplit("/", 1)[-1].split(".", 1)) == key
        if key.startswith(PATCH_PREFIX):
            return patch_key(key.rsplit("/", 1)[-1]) == key
        if key.startswith(METADATA_PREFIX):
            version, role = metadata_role_of(key)
            return (version > 0 or role == "timestamp") and metadata_key(role, version or None) == key
        if key.startswith(STAGING_PREFIX):
            parts = key.split("/")
            return len(parts) == 4 and staged_pack_key(parts[1], parts[2]) == key
        plain = plain_key_of(key)
        product = product_of(plain)
        if product is None or plain.count("/") < 2:
            return False
        document = version_document_of(plain)
        return bool(plain in (product_config_key(product), plan_index_key(product)) or channel_of(plain)
                    or plan_pair_of(plain) or (document and document[2] in _VERSION_DOCUMENTS)
                    or content_key_of(plain))
    except InvalidKey:
        return False


def metadata_role_of(key: str) -> tuple[int, str]:
    """(version, role) of ``metadata/<version>.<role>.json``; (0, role) without a version."""
    head, _, rest = key.rsplit("/", 1)[-1].removesuffix(".json").partition(".")
    return (int(head), rest) if rest and head.isdigit() else (0, head)


def product_of(key: str) -> str | None:
    """The product a key under products/ belongs to."""
    if not key.startswith(PRODUCT_PREFIX):
        return None
    product = key[len(PRODUCT_PREFIX):].split("/", 1)[0]
    return product if _PRODUCT.fullmatch(product) else None


def version_document_of(key: str) -> tuple[str, str, str] | None:
    """(product, version, document name) of a key products/P/versions/V/NAME."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] + "/" != PRODUCT_PREFIX or parts[2] != "versions" or is_hashed_copy(key):
        return None
    return parts[1], parts[3], parts[4]


def plan_pair_of(key: str) -> tuple[str, str] | None:
    """(from version, to version) of a plan key products/P/plans/FROM/TO.json."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] + "/" != PRODUCT_PREFIX or parts[2] != "plans" or not parts[4].endswith(".json") \
            or is_hashed_copy(key):
        return None
    pair = parts[3], parts[4][: -len(".json")]
    return pair if plan_key(parts[1], *pair) == key else None


def publish_record_of(key: str) -> tuple[str, str] | None:
    """(product, record id) of a publish record key logs/publishes/P/ID.json."""
    if not key.startswith(PUBLISH_LOG_PREFIX) or not key.endswith(".json"):
        return None
    product, _, name = key[len(PUBLISH_LOG_PREFIX):].partition("/")
    record_id = name[: -len(".json")]
    return (product, record_id) if _PRODUCT.fullmatch(product) and "/" not in record_id and record_id else None


def channel_of(key: str) -> str | None:
    """The channel name of a pointer key products/P/channels/C.json."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] + "/" != PRODUCT_PREFIX or parts[2] != "channels" or is_hashed_copy(key) \
            or not parts[3].endswith(".json"):
        return None
    channel = parts[3][: -len(".json")]
    return channel if channel_key(parts[1], channel) == key else None


def content_key_of(key: str) -> tuple[str, str] | None:
    """(product, key id) of a released content key products/P/keys/ID.json."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] + "/" != PRODUCT_PREFIX or parts[2] != "keys" or not parts[3].endswith(".json"):
        return None
    key_id = parts[3][: -len(".json")]
    if not _PRODUCT.fullmatch(parts[1]) or not _CONTENT_KEY_ID.fullmatch(key_id):
        return None
    return parts[1], key_id
