"""Trust, with TUF (python-tuf): the publisher's signed metadata (repository), its keys
(keys), and the client's checking of it from a trusted root (checking, anchors)."""
