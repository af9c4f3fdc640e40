"""depot's library: stage functions over small stores, laid out by role.

    errors     every error code and its exit code
    layout     every key, built and parsed in one place
    core/      chunking, codec, hashing, patching, safety, versions, work helpers
    formats/   one typed module per document, canonical JSON, schema checks
    storage/   stores by capability, locations, HTTP origins
    build/     sources, ingest, chunk, products, catalog
    delta/     patch engines, diff, the cheapest update route
    trust/     TUF metadata and keys: signing and checking
    client/    fetch, install, update, verify, repair, cat: the player's side
    publish/   channels, publish to origins, upload, rm, gc, events
    stats/     export, query, report
    service/   the lookup service: its app, catalog, links and update check

Stages take stores, names and an executor. They return small frozen results. They never
print, parse arguments or start clusters: that is cli.py and dask_cluster/. Each
package's docstring says what it may import; tests/test_layering.py enforces it. Nothing
is imported here, so importing one module loads only what it needs.
"""
