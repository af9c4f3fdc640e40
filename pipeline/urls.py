"""Turning location URLs into fsspec filesystems.

A location is a plain path, ``file://``, ``s3://bucket/prefix`` or ``memory://``. S3
credentials come the usual AWS way (environment, config files); the endpoint comes from
``DEPOT_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``. They are read from the environment, not
passed around, so that Dask worker processes started from this one see the same settings.
"""

from __future__ import annotations

import os

import fsspec
from fsspec.implementations.local import LocalFileSystem


def _backend_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:  # S3 failures s3fs does not turn into OSError: no credentials, bad endpoint, ...
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:
        pass
    return tuple(errors)


BACKEND_ERRORS = _backend_errors()
"""What reading or writing a location can raise besides bugs: to be reported, naming it."""


def storage_options(url: str) -> dict:
    if url.startswith(("s3://", "s3a://")):
        endpoint = os.environ.get("DEPOT_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
        return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    return {}


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem holding ``url`` and the path of ``url`` within it."""
    fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    return fs, path.rstrip("/") if path not in ("/", "") else path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(url: str, key: str) -> str:
    return f"{url.rstrip('/')}/{key}"
