"""The player's side: the reference client.

Fetch from origins with failover. Install, update, verify and repair a game directory.
Cat one file. It proves that what the pipeline publishes is right and usable. It does
not make patches or read build sources: players do not need them.

May import: errors, layout, core, formats, storage, trust, delta.route.
"""
