"""depot's library: stage functions over small stores, laid out by role.

    core/      chunking, codec, hashing, safety, versions, parallel helpers (pure)
    formats/   one typed module per repository document, canonical JSON, schemas
    storage/   stores by capability, locations with their own settings, HTTP origins
    build/     sources, ingest, chunk, products, catalog
    delta/     patch engines, diff, the cheapest update route
    client/    fetch, install, update, verify, repair, cat: the player's side
    publish/   channels
    testing/   the store contract suite and test origins (tests and benchmarks only)

Stages take stores, names and an executor and return small frozen results; they never
print, parse arguments or start clusters (that is cli.py and dask_cluster/). Nothing is
imported here, so that importing one module loads only what it needs.
"""
