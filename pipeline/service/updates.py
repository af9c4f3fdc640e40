"""The update check: what a player's installed version needs to reach its channel's, priced
the way the client will do it (``delta.route.update_route``: one decision, shared)."""

from __future__ import annotations

from ..delta.route import update_route
from ..errors import ContentLocked, NotFound
from .catalog import Catalog


def check(catalog: Catalog, product: str, current: str, channel: str) -> dict:
    """The service documents' ``updateInfo`` attributes for one installed product."""
    if catalog.channels(product):  # a channel it does not have is NOT_FOUND, never its newest build
        latest = catalog.channel(product, channel).version
    else:  # a product without channels (unsigned, in development): its newest version
        latest = catalog.versions(product)[-1]
    info = {"productId": product, "isUpdateAvailable": latest != current, "latestVersionId": latest}
    if latest == current:
        return info
    try:
        target = catalog.manifest(product, latest)
    except ContentLocked as exc:  # embargoed: nothing to install yet, only to pre-load
        locked = {"preloadVersionId": latest, "releaseAt": exc.release_at}
        return {**info, "isUpdateAvailable": False, "latestVersionId": current,
                **{k: v for k, v in locked.items() if v is not None}}
    try:
        installed = catalog.manifest(product, current)
    except NotFound:  # a version this service does not know: everything is downloaded
        return {**info, "updateType": "full", "downloadSizeBytes": target.totals()["stored_bytes"],
                "requiredDiskSpaceBytes": target.totals()["bytes"]}
    route = update_route(catalog.plan_index(product), current, latest, target.chunk_cost_from(installed))
    if route is not None:
        hops = list(zip(route.versions, route.versions[1:]))
        try:
            disk = max(catalog.plan(product, a, b).required_disk_space_bytes for a, b in hops)
        except NotFound:  # indexed, not on the origins (yet): the client will fetch chunks too
            route = None
    if route is not None:
        return {**info, "updateType": "delta", "downloadSizeBytes": route.download_bytes,
                "requiredDiskSpaceBytes": disk}
    before = {(f.path, f.hash_sha256) for f in installed.files}
    return {**info, "updateType": "full", "downloadSizeBytes": target.chunk_cost_from(installed),
            "requiredDiskSpaceBytes": sum(f.size for f in target.files if (f.path, f.hash_sha256) not in before)}
