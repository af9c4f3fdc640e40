"""The pure parts every stage stands on.

Content-defined chunking, the chunk codec, hashing, applying patches, build-entry safety,
version order, a shared bandwidth limit and helpers that spread work. No storage here. No
I/O beyond the files and buffers handed in.

May import: errors.
"""
