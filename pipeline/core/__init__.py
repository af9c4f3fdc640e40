"""The pure parts every stage stands on: content-defined chunking, the chunk codec, hashing,
build-entry safety, version order and the helpers for spreading work. No storage, no I/O
beyond the files and buffers handed in."""
