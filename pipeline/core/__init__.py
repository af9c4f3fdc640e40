"""The pure parts every stage stands on.

Content-defined chunking, the chunk codec and hashing. Applying patches. Refusing unsafe
build entries. Version order. Rates and a shared bandwidth limit. Helpers that spread
work over an executor. Nothing here knows of stores. Nothing reads or writes beyond the
files and buffers handed in.

May import: errors.
"""
