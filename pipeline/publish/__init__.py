"""Releasing versions: channel pointers (and, to come, origins, upload and gc)."""
