"""Updates between versions.

Patch engines make patches. The diff writes update plans and their patches. The route
search finds the cheapest update path; clients and the lookup service share it.

May import: errors, layout, core, formats, storage.
"""
