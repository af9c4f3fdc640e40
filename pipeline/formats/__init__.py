"""One typed module per repository document (inventory, manifest, plan, plan index, channel,
product, install record): a frozen dataclass with ``to_dict``/``from_dict``, and
``to_bytes``/``from_bytes`` from ``canonical.Document``, which validates every document
against its JSON Schema in ``manifests/schema/`` on the way out and on the way in. The
bytes ``to_bytes`` gives are what gets stored, served and signed."""
