"""depot's library: stage functions over small stores, laid out by role.

    errors     every error code and its exit code
    layout     every key, built and parsed in one place
    core/      chunking, codec, hashing, applying patches, safety, version order, rates
    formats/   one typed module per document, canonical JSON, schema checks, sealing
    storage/   stores by capability, locations, the events outbox
    build/     sources, ingest, chunk, embargoed builds, products, catalog
    delta/     patch engines, diff, the cheapest update route
    trust/     TUF metadata and keys: signing and checking
    client/    fetch, install, update, verify, repair, pre-load, cat: the player's side
    publish/   channels, publish to origins, release, rm, gc, events
    stats/     export, query, report
    service/   the lookup service and its download tasks

Stages take stores, names and an executor. They return small frozen results. They never
print, parse arguments or start clusters: cli.py and dask_cluster/ do that. Each
package's docstring says what it may import. tests/test_layering.py enforces it. Nothing
is imported here, so importing one module loads only what it needs.
"""
