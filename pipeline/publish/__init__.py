"""Releasing versions.

Publish versions to CDN origins, uploading only what is missing. Move channel pointers:
promote and roll back. Retire versions (rm) and reclaim what no version needs (gc).
Announce every release through the events outbox.

May import: errors, layout, core, formats, storage, trust.
"""
