"""The player's side: the reference client.

fetch reads chunks from origins, with failover. install, update, verify and repair manage
a game directory. preload downloads an embargoed version before its release. cat rebuilds
one file. The client proves that what the pipeline publishes is right and usable. It
makes no patches and reads no build sources: players do not need them.

May import: errors, layout, core, formats, storage, trust, delta.route.
"""
