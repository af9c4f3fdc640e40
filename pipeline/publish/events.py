"""Events: tell the platform what depot published, through the events outbox
(storage.outbox: written to disk first, then delivered to every configured sink, so a sink
that is down gets the event later and a publish never fails or waits long for it).
docs/events.md says what consumers see.
"""

from __future__ import annotations

from pathlib import Path

from .. import layout
from ..errors import InvalidArgument
from ..storage import Location, Locations
from ..storage.outbox import CONTENT_TYPE, TOPIC, Delivery, EventSinks, SinkResult, cloud_event, emit, flush, now

__all__ = ["ACTIONS", "CONTENT_TYPE", "MANIFEST_UPDATED", "TOPIC", "VERSION_RELEASED", "Delivery", "EventSinks",
           "SinkResult", "announce", "announce_release", "emit", "flush", "manifest_updated", "sinks_of",
           "version_released"]

MANIFEST_UPDATED = "com.platform.download.manifest.updated.v1"
VERSION_RELEASED = "com.platform.download.version.released.v1"
ACTIONS = ("publish", "promote", "rollback")


def manifest_updated(product: str, version: str, manifest_url: str, *, action: str, channel: str | None = None,
                     origin: str | None = None, source: str = "depot") -> dict:
    """A CloudEvents 1.0 event (structured JSON) saying that ``product`` ``version``'s
    manifest is at ``manifest_url``; its data is the download service's
    manifest.updated.v1 payload plus depot's action, channel and origin (omitted when None)."""
    if action not in ACTIONS:
        raise InvalidArgument(f"event action must be one of {', '.join(ACTIONS)}, got {action!r}")
    at = now()
    data = {"productId": product, "versionId": version, "manifestUrl": manifest_url, "updateTimestamp": at,
            "action": action, "channel": channel, "origin": origin}
    return cloud_event(MANIFEST_UPDATED, {k: v for k, v in data.items() if v is not None},
                       subject=f"{product}/{version}", source=source, time_=at)


def version_released(product: str, version: str, key_url: str, *, key_id: str, released_at: str,
                     channels: list[str] | tuple[str, ...] = (), origin: str | None = None,
                     source: str = "depot") -> dict:
    """A CloudEvents 1.0 event saying that embargoed ``product`` ``version`` is released:
    its content key is published at ``key_url`` (the key itself is never in an event)."""
    data = {"productId": product, "versionId": version, "releasedAt": released_at, "keyId": key_id,
            "keyUrl": key_url, "channels": list(channels), "origin": origin}
    return cloud_event(VERSION_RELEASED, {k: v for k, v in data.items() if v is not None},
                       subject=f"{product}/{version}", source=source, time_=released_at)


def sinks_of(locations: Locations) -> EventSinks:
    """The sinks of the locations file's [events] table. Its relative paths are relative to
    the file, like the file's other paths. The outbox defaults to the user's data folder."""
    from ..trust.anchors import default_data_dir

    table = dict(locations.events)
    base = Path(locations.path).parent if locations.path else Path(".")
    for key in ("jsonl", "outbox"):
        value = table.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            table[key] = str(base / value)
    return EventSinks.from_table(table, default_data_dir() / "outbox")


def announce(locations: Locations, repository: Location, product: str, version: str, action: str, origins=(),
             channel: str | None = None) -> Delivery | None:
    """Emit a manifest.updated event for each origin (for the repository when there are
    none) to the sinks of the [events] table. Returns the delivery report, or None when
    the table names no sinks. An unreachable sink is reported, never raised."""
    if not locations.events:
        return None
    return emit(sinks_of(locations), *(manifest_updated(product, version, url, action=action, channel=channel,
                                                        origin=name)
                                       for url, name in _per_origin(locations, repository, origins,
                                                                    layout.manifest_key(product, version))))


def announce_release(locations: Locations, repository: Location, product: str, version: str, key_id: str,
                     released_at: str, origins=(), channels: list[str] | tuple[str, ...] = ()) -> Delivery | None:
    """Emit a version.released event for each origin (for the repository when there are
    none), as ``announce`` does."""
    if not locations.events:
        return None
    return emit(sinks_of(locations), *(version_released(product, version, url, key_id=key_id,
                                                        released_at=released_at, channels=channels, origin=name)
                                       for url, name in _per_origin(locations, repository, origins,
                                                                    layout.content_key_key(product, key_id))))


def _per_origin(locations: Locations, repository: Location, origins, key: str) -> list[tuple[str, str]]:
    """(where players read ``key``, the origin's name) for each origin, or the repository."""
    out = []
    for loc in [locations.resolve(o) for o in origins] or [repository]:
        url = f"{loc.public_url.rstrip('/')}/{key}" if loc.public_url else loc.child(key).url
        out.append((url, next((n for n, named in locations.named if named.url == loc.url), loc.url)))
    return out
