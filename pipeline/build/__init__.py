"""The publisher's side of a build.

sources reads a build from a directory or an archive. ingest records its inventory. chunk
cuts it into chunks and writes its manifest; run does both in one pass. embargo seals a
version's new content until its release. products keeps each product's settings. catalog
lists what the repository holds.

May import: errors, layout, core, formats, storage.
"""
