"""The repository's documents: one typed module each.

Inventory, manifest, plan, plan index, channel, product, install record and the others
each have a frozen dataclass with ``to_dict`` and ``from_dict``. ``canonical.Document``
gives ``to_bytes`` and ``from_bytes``. It checks every document against its JSON Schema
in ``manifests/schema/``, on the way out and on the way in. The bytes ``to_bytes`` gives
are what gets stored, served and signed. So formats know nothing of storage.

May import: errors, layout, core.
"""
