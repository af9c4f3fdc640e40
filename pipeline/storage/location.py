"""Locations: where a repository, an origin or a build lives, with the options to reach it.

A location is a URL (a plain path, ``file://``, ``s3://bucket/prefix``, ``memory://``, or
``http(s)://`` for read-only origins) and its own connection settings: S3 endpoint, region,
credentials profile, timeout. The settings travel with the location, a small frozen value
that Dask ships to workers as it is, so one process can read a repository in one region
and write buckets in three others. Nothing here reads or writes the environment; AWS
credentials are found the usual botocore way (environment, profile files).

A locations file (TOML) names locations::

    [msk]
    url = "s3://depot-msk/main"
    endpoint = "https://s3.msk.example.internal"
    region = "ru-central-1"
    profile = "depot-msk"
    timeout = 10

``--repo msk`` or ``--origin msk`` then means that location, and any URL under
``s3://depot-msk/main`` gets its settings. One table is not a location: ``[events]``
says where publish events go (docs/events.md).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidLocation

if TYPE_CHECKING:
    import fsspec

SCHEMES = ("file", "s3", "memory", "http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_FIRST_PART = {"s3": "bucket", "http": "host", "https": "host", "memory": "name"}
EVENTS_TABLE = "events"  # not a location: where publish events go (docs/events.md)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Location:
    url: str
    endpoint: str | None = None  # S3 API endpoint, when not AWS itself
    region: str | None = None
    profile: str | None = None  # AWS credentials profile
    timeout: float = DEFAULT_TIMEOUT  # seconds to connect, and without data on a read
    public_url: str | None = None  # how players reach an origin (its CDN), for links and events
    priority: int = 0  # among origins, lower first

    def __post_init__(self):
        object.__setattr__(self, "url", _checked_url(self.url))
        for name in ("endpoint", "region", "profile"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidLocation(f"{self.url}: {name} must be a non-empty string, got {value!r}")
        if self.endpoint is not None and not re.match(r"^https?://[^/\s]+", self.endpoint):
            raise InvalidLocation(f"{self.url}: endpoint {self.endpoint!r} is not an http:// or https:// URL")
        if self.public_url is not None and not re.match(r"^https?://[^/\s]+", str(self.public_url)):
            raise InvalidLocation(f"{self.url}: public_url {self.public_url!r} is not an http:// or https:// URL")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidLocation(f"{self.url}: priority must be a whole number, got {self.priority!r}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise InvalidLocation(f"{self.url}: timeout must be a positive number of seconds, got {self.timeout!r}")

    def __str__(self) -> str:
        return self.url

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0] if "://" in self.url else "file"

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def local_path(self) -> str:
        """A local location's absolute path, without fsspec's lookup: reading a build asks
        it for every file."""
        return os.path.abspath(os.path.expanduser(self.url))

    def child(self, key: str) -> "Location":
        """The location of ``key`` below this one, with the same settings."""
        return dataclasses.replace(self, url=join(self.url, key))

    def storage_options(self) -> dict:
        """fsspec options for this location."""
        if self.scheme != "s3":
            return {}
        client = {"endpoint_url": self.endpoint, "region_name": self.region}
        return {
            "client_kwargs": {k: v for k, v in client.items() if v},
            "config_kwargs": {
                "connect_timeout": min(self.timeout, CONNECT_TIMEOUT),  # an unreachable endpoint says so fast
                "read_timeout": self.timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},  # callers own the retry policy
            },
            # Listings are read to decide what exists: never from a cache another writer made stale.
            "use_listings_cache": False,
            **({"profile": self.profile} if self.profile else {}),
        }

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem holding this location, and its path within it."""
        return _filesystem(self)


@functools.lru_cache(maxsize=64)
def _filesystem(loc: Location) -> tuple[fsspec.AbstractFileSystem, str]:
    import fsspec  # here, not above: a command on local files only never needs it

    fs, path = fsspec.core.url_to_fs(loc.url, **loc.storage_options())
    return fs, path.rstrip("/") if path not in ("/", "") else path


def join(url: str, key: str) -> str:
    return f"{url.rstrip('/')}/{key}" if key else url


def _checked_url(url: str) -> str:
    if not isinstance(url, str):
        raise InvalidLocation(f"a location must be a string (a path or a URL), got {url!r}")
    if not url.strip():
        raise InvalidLocation("empty location: give a path or a URL (s3://bucket/prefix, https://...)")
    m = _SCHEME.match(url)
    if "://" in url:
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower()
        if scheme == "s3a":
            scheme = "s3"
        if scheme not in SCHEMES:
            raise InvalidLocation(f"{url}: unknown scheme {scheme + '://'!r}; use a path, "
                                  + ", ".join(f"{s}://" for s in SCHEMES))
        if scheme == "file":
            return rest.rstrip("/") or "/"
        rest = rest.rstrip("/")
        if not rest.split("/", 1)[0]:
            raise InvalidLocation(f"{url}: no {_FIRST_PART[scheme]} after {scheme}://")
        return f"{scheme}://{rest}"
    if m and len(m.group(1)) > 1:  # "s3:/bucket", "https:host": a URL missing a slash, not a file name
        raise InvalidLocation(f"{url}: not a valid URL (did you mean {m.group(1)}://...?)")
    path = url.rstrip("/") or "/"
    if not path.strip():  # " /": a directory whose name is blank, surely a typo
        raise InvalidLocation(f"{url!r}: a blank directory name; give a path or a URL")
    return path


@dataclass(frozen=True)
class Locations:
    """Named locations and the defaults for unnamed ones: what the command line's
    ``--repo``, ``--origin`` and sources resolve through."""

    named: tuple[tuple[str, Location], ...] = ()
    s3_endpoint: str | None = None  # for s3:// locations that no named location covers
    events: tuple[tuple[str, object], ...] = ()  # the file's [events] table: where publish events go
    path: str | None = None  # the file read, so that its relative paths can be resolved

    def resolve(self, ref: str | Location) -> Location:
        """A location by name, or by URL: settings from the named location whose URL
        holds it (the longest such), else the defaults. Local paths come back absolute,
        so that workers elsewhere (a Dask cluster) read and write the same place."""
        if isinstance(ref, Location):
            return ref
        named = dict(self.named)
        if ref in named:
            return named[ref]
        if named and _NAME.fullmatch(ref) and "/" not in ref and not os.path.exists(ref):
            raise InvalidLocation(f"{ref!r} is not a location in the locations file ({', '.join(sorted(named))}); "
                                  f"for a local directory of that name, write ./{ref}")
        url = _checked_url(ref)
        if "://" not in url:
            url = os.path.abspath(url)
        holders = [loc for _, loc in self.named if url == loc.url or url.startswith(loc.url.rstrip("/") + "/")]
        if holders:
            return dataclasses.replace(max(holders, key=lambda loc: len(loc.url)), url=url)
        return Location(url, endpoint=self.s3_endpoint if url.startswith("s3://") else None)

    @classmethod
    def load(cls, path: str | None, s3_endpoint: str | None = None) -> "Locations":
        """The locations named in the TOML file at ``path`` (None: none)."""
        if path is None:
            return cls((), s3_endpoint)
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise InvalidLocation(f"{path}: cannot read the locations file ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidLocation(f"{path}: not a valid locations file ({exc})") from None
        except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib decodes before it parses
            line = exc.object.count(b"\n", 0, exc.start) + 1
            raise InvalidLocation(f"{path}: not a valid locations file (not UTF-8: byte {exc.object[exc.start]:#04x} "
                                  f"on line {line})") from None
        fields = {f.name: f.type for f in dataclasses.fields(Location)}
        named = []
        events = doc.pop(EVENTS_TABLE, {})
        if not isinstance(events, dict):
            raise InvalidLocation(f"{path}: [{EVENTS_TABLE}] must be a table (see docs/events.md)")
        for name, table in sorted(doc.items()):
            if not _NAME.fullmatch(name) or not isinstance(table, dict):
                raise InvalidLocation(f"{path}: [{name}] is not a location table (a name of letters, digits, . _ -)")
            unknown = sorted(set(table) - set(fields))
            if unknown or "url" not in table:
                raise InvalidLocation(f"{path}: [{name}] " + (f"has unknown keys {unknown}; known: {sorted(fields)}"
                                                              if unknown else "has no url"))
            if not isinstance(table["url"], str):
                raise InvalidLocation(f"{path}: [{name}]: url must be a string (a path or a URL), "
                                      f"got {table['url']!r}")
            try:
                named.append((name, Location(**table)))
            except (TypeError, InvalidLocation) as exc:
                raise InvalidLocation(f"{path}: [{name}]: {exc}") from None
        return cls(tuple(named), s3_endpoint, tuple(sorted(events.items())), path)
