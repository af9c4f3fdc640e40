"""What the lookup service's own work costs, in process and without HTTP: its steps per
request in microseconds, and an update check's and a chunks page's work on large
synthetic manifests. Used by ``bench_api.py``."""

from __future__ import annotations

import time
import timeit

from benchlib import print_header


def own_code_us(config, product: str, channel: str, current: str, key: str, body: bytes) -> dict:
    """Microseconds per call of the service's own steps (a ``ServiceConfig``'s service), in
    this process, no HTTP."""
    from starlette.responses import JSONResponse

    from pipeline import layout
    from pipeline.service.app import UpdateCheck
    from pipeline.service.catalog import Catalog
    from pipeline.service.links import LinkSigner
    from pipeline.service.updates import check

    catalog = Catalog(config.origins)
    check(catalog, product, current, channel)  # documents read and parsed once, as in the service

    def one_link():
        origin = catalog.preferred(None)
        return LinkSigner(origin.public_url, config.link_secret, config.link_keys, config.link_ttl,
                          config.link_style).link(key)

    url, expires = one_link()
    check_answer = {"data": [{"type": "updateInfo", "attributes": check(catalog, product, current, channel)}]}
    link_answer = {"data": [{"type": "link", "id": key, "attributes": {"href": url, "expiresAt": expires}}]}
    steps = {
        "updates.check (the route, chunk costs, plans)": lambda: check(catalog, product, current, channel),
        "UpdateCheck.model_validate_json (the body)": lambda: UpdateCheck.model_validate_json(body),
        "JSONResponse render (update-check answer)": lambda: JSONResponse(check_answer).body,
        "layout.check_key": lambda: layout.check_key(key),
        "a link: catalog.preferred + LinkSigner(...) + link()": one_link,
        "JSONResponse render (one-link answer)": lambda: JSONResponse(link_answer).body,
    }
    out = {}
    for name, fn in steps.items():
        timer = timeit.Timer(fn)
        n, _ = timer.autorange()
        best = min(timer.repeat(3, n)) / n
        out[name] = round(best * 1e6, 2)
    return out


def synthetic_costs(n_chunks: int, changed: float = 0.05) -> dict:
    """What the service's per-request work costs on a large version, in this process: two
    synthetic manifests of ``n_chunks`` 1 MiB chunks in files of 10 chunks each, the newer
    with ``changed`` of its chunks new. Milliseconds (best of 3), and the manifest's size."""
    import hashlib

    from pipeline.core.chunk_params import ChunkParams
    from pipeline.formats.manifest import ChunkRef, FileEntry, Manifest

    def manifest(version: str, new_every: int) -> Manifest:
        entries = []
        for f in range(max(1, n_chunks // 10)):
            chunks = []
            for i in range(10):
                n = f * 10 + i
                tag = f"{version}-{n}" if new_every and n % new_every == 0 else f"base-{n}"
                cid = hashlib.blake2b(tag.encode(), digest_size=32).hexdigest()
                chunks.append(ChunkRef(i << 20, 1 << 20, cid, 700_000))
            entries.append(FileEntry(f"data/d{f // 1000:03d}/f{f:06d}.pak", "file", 10 << 20, False,
                                     hashlib.sha256(f"{version}-{f}".encode()).hexdigest(), chunks=tuple(chunks)))
        return Manifest("big", version, ChunkParams(256 << 10, 1 << 20, 4 << 20), tuple(entries))

    installed, target = manifest("1", 0), manifest("2", round(1 / changed) if changed else 0)
    data = target.to_bytes()
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    parsed = Manifest.from_bytes(data, "big.json")
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del parsed

    def best(fn, repeat=3) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(min(times) * 1000, 2)

    return {
        "chunks": n_chunks, "files": max(1, n_chunks // 10), "changed": changed,
        "manifest_bytes": len(data), "parsed_bytes": held,
        "ms": {
            "Manifest.from_bytes (parse and validate, once per version)": best(
                lambda: Manifest.from_bytes(data, "big.json"), 1),
            "Manifest.unique_chunks": best(target.unique_chunks),
            "chunk_cost_from (every update check, the two manifests)": best(
                lambda: target.chunk_cost_from(installed)),
            "sorted(unique_chunks()) (every chunks page request)": best(
                lambda: sorted(target.unique_chunks().values(), key=lambda c: c.id)),
            "Manifest.totals (an update check from an unknown version)": best(target.totals),
        },
    }


def print_costs(own: dict | None, syn: dict | None) -> None:
    """What ``own_code_us`` and ``synthetic_costs`` found, as tables."""
    if own:
        print()
        print_header(f"{'the service own steps, in process, no HTTP':<56} {'us/call':>8}")
        for name, us in own.items():
            print(f"{name:<56} {us:>8.1f}")
    if syn:
        print()
        print_header(f"{'per-request work on a large version (synthetic manifests, in process)':<64} {'ms':>8}")
        for name, ms in syn["ms"].items():
            print(f"{name:<64} {ms:>8.1f}")
        print(f"({syn['chunks']} chunks of 1 MiB in {syn['files']} files, {syn['changed'] * 100:g}% new in the "
              f"newer version; its manifest: {syn['manifest_bytes'] / (1 << 20):.1f} MiB of JSON, "
              f"{syn['parsed_bytes'] / (1 << 20):.0f} MiB once parsed)")
