"""What ``depot serve`` configures for download tasks (the service documents' section 7:
the database, Redis, the JWT keys, limits, the Library Service)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE = "sqlite:///depot-tasks.db"


@dataclass(frozen=True)
class TaskSettings:
    database_url: str = DEFAULT_DATABASE  # sqlite:///PATH (one instance) or postgresql+psycopg://... (several)
    redis_url: str | None = None  # hot state shared by instances; None: in process
    jwt_keys: tuple[bytes, ...] = ()  # PEM public keys tokens are signed with (any may sign)
    jwks_file: Path | None = None  # a JWKS document; read again when a token names a key id it lacks
    jwt_audience: str | None = None  # required ``aud`` when set
    jwt_issuer: str | None = None  # required ``iss`` when set
    max_active_tasks: int = 20  # unfinished tasks a user may have; one more is DOWNLOAD_QUEUE_FULL
    max_concurrent_downloads: int = 1  # of those, how many download at once
    library_url: str | None = None  # the Library Service, asked for entitlement when the token has no claim
    library_timeout_s: float = 5.0
    channel: str = "stable"  # what a task without a version downloads (else the newest version)
    progress_write_s: float = 0.5  # how often progress reports taken in memory are written (running.py)

    def __post_init__(self) -> None:
        if self.max_active_tasks < 1 or self.max_concurrent_downloads < 1:
            raise ValueError("max_active_tasks and max_concurrent_downloads are at least 1")
