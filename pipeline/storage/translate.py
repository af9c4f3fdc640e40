"""The one translator from backend errors to depot's: only "not found" becomes
``NotFound``; every other failure to reach or use a location becomes ``StoreUnavailable``
naming it. Callers see no botocore, aiohttp, urllib3 or OSError types."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ..errors import DepotError, NotFound, StoreUnavailable


def backend_errors() -> tuple[type[BaseException], ...]:
    """What reading or writing a location can raise besides bugs: to be reported, naming
    it. Evaluated when an exception is being matched: S3 failures that s3fs does not turn
    into OSError (no credentials, bad endpoint) come from botocore and aiohttp, which are
    loaded only once an S3 location is used, so importing them here would cost every
    command a fifth of a second for nothing. urllib3 likewise, once an HTTP location or S3 is."""
    errors: list[type[BaseException]] = [OSError, *_urllib3_errors()]
    if "botocore" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    if "aiohttp" in sys.modules:
        from aiohttp import ClientError as AiohttpError

        errors.append(AiohttpError)
    return tuple(errors)


@contextlib.contextmanager
def translated(where: str) -> Iterator[None]:
    """Backend errors raised inside become NotFound or StoreUnavailable naming ``where``."""
    try:
        yield
    except DepotError:
        raise
    except FileNotFoundError as exc:
        raise NotFound(f"{where}: not found") from exc
    except backend_errors() + (ValueError,) as exc:
        raise StoreUnavailable(f"{where}: {describe(exc)}") from exc


def check_status(status: int, where: str) -> None:
    """The one reading of an HTTP status from a server that holds objects: 200 is the
    object; 404 is ``NotFound``; anything else is ``StoreUnavailable`` naming ``where``
    (5xx is worth a retry; another answer may be a proxy's or a CDN's passing mood)."""
    if status == 404:
        raise NotFound(f"{where}: not found")
    if status != 200:
        raise StoreUnavailable(f"{where}: HTTP {status}")


def is_unreachable(exc: BaseException) -> bool:
    """Whether a failure is the location's (unreachable, no credentials, refused, timed
    out), as opposed to the object's (missing, unreadable, not what was expected)."""
    if isinstance(exc, (ConnectionError, TimeoutError, *_urllib3_errors())):
        return True
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return False
    names = {type(e).__module__.split(".")[0] for e in _chain(exc)}
    return bool(names & {"botocore", "aiobotocore", "aiohttp"})  # an S3 failure, not the object's


def _urllib3_errors() -> tuple[type[BaseException], ...]:
    if "urllib3" not in sys.modules:
        return ()
    import urllib3

    return (urllib3.exceptions.HTTPError,)


def _chain(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


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
