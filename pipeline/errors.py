"""Typed errors. Each class carries the service error code and the process exit code.

The CLI has one handler that prints ``str(error)`` and exits with ``error.exit_code``;
the table of codes lives in docs/cli.md and must be kept in step with this module.
"""

from __future__ import annotations


class DepotError(Exception):
    """Something went wrong."""

    code = "DEPOT_ERROR"
    exit_code = 1

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or self.code).strip())

    def to_dict(self) -> dict:
        return {"error": self.code, "message": str(self)}


class NotFound(DepotError):
    """The requested object does not exist."""

    code = "NOT_FOUND"
    exit_code = 3


class SourceInvalid(DepotError):
    """The build source cannot be read: missing, unsupported, truncated or corrupt."""

    code = "SOURCE_INVALID"
    exit_code = 4


class UnsafeEntry(DepotError):
    """The build contains an entry that could escape or confuse the install directory."""

    code = "UNSAFE_ENTRY"
    exit_code = 5


class VersionConflict(DepotError):
    """This product version already exists with different content."""

    code = "VERSION_CONFLICT"
    exit_code = 6


class SourceChanged(DepotError):
    """The build changed between ingest and chunk."""

    code = "SOURCE_CHANGED"
    exit_code = 6


class IntegrityError(DepotError):
    """Stored bytes do not match their content address."""

    code = "CHUNK_INVALID"
    exit_code = 7


class FileHashMismatch(IntegrityError):
    """A rebuilt file does not match its SHA-256."""

    code = "FILE_HASH_MISMATCH"


class PatchFailed(DepotError):
    """A delta patch could not be applied."""

    code = "DELTA_PATCH_APPLICATION_FAILED"
    exit_code = 7


class ManifestInvalid(DepotError):
    """A repository document does not match its JSON Schema."""

    code = "MANIFEST_INVALID"
    exit_code = 8


class StoreUnavailable(DepotError):
    """The store or source location cannot be reached or written."""

    code = "STORE_UNAVAILABLE"
    exit_code = 9


class CdnUnreachable(DepotError):
    """No origin could deliver the content."""

    code = "CDN_UNREACHABLE"
    exit_code = 10


class InsufficientDiskSpace(DepotError):
    """The destination does not have room for the version."""

    code = "INSUFFICIENT_DISK_SPACE"
    exit_code = 11


class DestinationConflict(DepotError):
    """The directory holds another product."""

    code = "DESTINATION_HOLDS_OTHER_PRODUCT"
    exit_code = 6


class InstallBusy(DepotError):
    """Another depot process is working on this directory."""

    code = "INSTALL_BUSY"
    exit_code = 12


class InvalidKey(DepotError):
    """A product, version or object key is malformed."""

    code = "INVALID_NAME"
    exit_code = 2


class InvalidArgument(DepotError):
    """An option's value is out of range or inconsistent."""

    code = "INVALID_ARGUMENT"
    exit_code = 2


class InvalidLocation(DepotError):
    """A location URL or locations file is malformed, or names an unknown scheme."""

    code = "INVALID_LOCATION"
    exit_code = 2


# -- trust: what a client refuses, each attack its own code ----------------------------------


class TrustError(DepotError):
    """Signed metadata was refused (the base of the codes below)."""


class SignatureInvalid(TrustError):
    """Metadata is unsigned, tampered with, or signed by a key that is unknown or revoked."""

    code = "METADATA_SIGNATURE_INVALID"
    exit_code = 13


class MetadataExpired(TrustError):
    """Signed metadata has expired: the origin may be serving a frozen, stale repository."""

    code = "METADATA_EXPIRED"
    exit_code = 14


class MetadataRollback(TrustError):
    """Metadata or a channel pointer is older than one already seen."""

    code = "METADATA_ROLLBACK"
    exit_code = 15


class TargetMismatch(IntegrityError):
    """A document does not match what the signed metadata says it is."""

    code = "TARGET_MISMATCH"
    exit_code = 16


class TrustMissing(TrustError):
    """No trusted root for this origin, or an origin with no signed metadata."""

    code = "TRUST_MISSING"
    exit_code = 17


class SigningKeyMissing(DepotError):
    """A private key the operation must sign with was not given."""

    code = "SIGNING_KEY_MISSING"
    exit_code = 2


class SigningKeyRefused(DepotError):
    """A private key was refused: readable by others, or its passphrase is missing or wrong."""

    code = "SIGNING_KEY_REFUSED"
    exit_code = 2


# -- the lookup service ------------------------------------------------------------------------


class LinkRefused(DepotError):
    """A signed CDN link that must not be honoured (the checking side)."""

    code = "CDN_LINK_REFUSED"
    exit_code = 16

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason  # "expired", "forged", "wrong path", "unknown key", "malformed"


class LinkGenerationFailed(DepotError):
    """A signed CDN link could not be made (no usable origin, no key, too many requests)."""

    code = "CDN_LINK_GENERATION_FAILED"
    exit_code = 10


class LinkRateLimited(DepotError):
    """Too many link requests from one client: slow down."""

    code = "CDN_LINK_RATE_LIMITED"
    exit_code = 10

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the client's next request is taken


# -- download tasks: the player's side -------------------------------------------------------


class DownloadPaused(DepotError):
    """The download task was paused (through the service, from another terminal): what was
    downloaded is kept; run the command again once the task is resumed."""

    code = "DOWNLOAD_PAUSED"
    exit_code = 18


class DownloadCancelled(DepotError):
    """The download task was cancelled: the partly downloaded files were removed."""

    code = "DOWNLOAD_CANCELLED"
    exit_code = 19


# -- download tasks: the service's side ------------------------------------------------------


class Unauthorized(DepotError):
    """No valid bearer token: missing, malformed, forged, expired or not for this service."""

    code = "UNAUTHORIZED"
    exit_code = 20


class Forbidden(DepotError):
    """The user is not entitled to download this product."""

    code = "FORBIDDEN"
    exit_code = 20


class EntitlementUnavailable(DepotError):
    """The Library Service, asked whether the user owns the product, did not answer."""

    code = "ENTITLEMENT_UNAVAILABLE"
    exit_code = 9


class QueueFull(DepotError):
    """The user's download queue is full: finish, cancel or wait for a task first."""

    code = "DOWNLOAD_QUEUE_FULL"
    exit_code = 21


class TaskStateConflict(DepotError):
    """The task's status does not allow this (pausing a completed task, resuming a running one)."""

    code = "INVALID_TASK_STATE"
    exit_code = 21


# -- pre-load: embargoed versions ------------------------------------------------------------


class ContentLocked(DepotError):
    """The version is embargoed: its content key is not released yet (pre-load it now;
    it unlocks at release)."""

    code = "CONTENT_LOCKED"
    exit_code = 22

    def __init__(self, message: str, release_at: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.release_at = release_at  # when the release is scheduled (UTC, ISO 8601), if it is
        self.retry_after = retry_after  # seconds until then, for the service's Retry-After


class ContentAuthenticationFailed(IntegrityError):
    """A sealed object does not authenticate: tampered with, swapped for another object, or
    opened with another release's key."""

    code = "CONTENT_AUTHENTICATION_FAILED"
