"""The publisher's side of a build: read its source, ingest it, cut it into chunks, keep
per-product settings, and list what the repository holds."""
