"""Releasing versions.

publish pushes versions to CDN origins; upload copies only what is missing. channels
promotes and rolls back. release unlocks an embargoed version. retire removes versions
(rm). gc reclaims what no version needs. events announces what was published, through
the events outbox.

May import: errors, layout, core, formats, storage, trust.
"""
