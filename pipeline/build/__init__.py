"""The publisher's side of a build.

Read its source, ingest it and cut it into chunks. Keep per-product settings. List what
the repository holds.

May import: errors, layout, core, formats, storage.
"""
