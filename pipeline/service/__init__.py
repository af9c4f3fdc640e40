"""The lookup service: a read-only FastAPI app over published origins.

app serves the API. catalog caches what the origins publish. verified checks their signed
metadata as players' clients do. links signs short-lived CDN links. updates prices an
update with the client's own route search. tasks runs players' download tasks, with
their own database. The service never writes to an origin. It never imports the client,
the patch engines or the cluster.

May import: errors, layout, core, formats, storage, trust, delta.route.
"""
