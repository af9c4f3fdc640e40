"""The repository's documents: one typed module each.

Inventory, manifest, plan, plan index, channel, product, release, pre-load list, install
record and the others. Each is a typed value with ``to_dict`` and ``from_dict``.
``canonical.Document`` gives ``to_bytes`` and ``from_bytes``. Both check the document
against its JSON Schema in ``manifests/schema/``. What ``to_bytes`` gives is what gets
stored, served and signed. sealed encrypts an embargoed version's objects. Formats know
nothing of storage.

May import: errors, layout, core.
"""
