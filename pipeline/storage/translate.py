"""The one translator from backend errors to depot's: only "not found" becomes
``NotFound``; every other failure to reach or use a location becomes ``StoreUnavailable``
naming it. Callers see no botocore, aiohttp, urllib3 or OSError types."""

from __future__ import annotations

import contextlib
from typing import Iterator

import urllib3

from ..errors import DepotError, NotFound, StoreUnavailable


def _backend_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, urllib3.exceptions.HTTPError]
    try:  # S3 failures s3fs does not turn into OSError: no credentials, bad endpoint, ...
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:
        pass
    try:
        from aiohttp import ClientError as AiohttpError

        errors.append(AiohttpError)
    except ImportError:
        pass
    return tuple(errors)


BACKEND_ERRORS = _backend_errors()
"""What reading or writing a location can raise besides bugs: to be reported, naming it."""


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Backend errors raised inside become NotFound or StoreUnavailable naming ``where``."""
    try:
        yield
    except DepotError:
        raise
    except FileNotFoundError as exc:
        raise NotFound(f"{where}: not found") from exc
    except (*BACKEND_ERRORS, ValueError) as exc:
        raise StoreUnavailable(f"{where}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


def _response(exc: BaseException | None) -> dict:
    while exc is not None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return response
        exc = exc.__cause__ or exc.__context__
    return {}


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed S3 call, however s3fs wrapped it."""
    return _response(exc).get("ResponseMetadata", {}).get("HTTPStatusCode")


def s3_code_of(exc: BaseException) -> str | None:
    """The S3 error code of a failed call (``NoSuchKey``, ``NoSuchBucket``, ...)."""
    return _response(exc).get("Error", {}).get("Code")
