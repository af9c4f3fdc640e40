"""Updates between versions.

engines make patches. diff writes update plans and their patches. pairs says which
version pairs to plan. route finds the cheapest update path; the client and the lookup
service share it.

May import: errors, layout, core, formats, storage.
"""
