"""The tasks' database behind one class: SQLite by default (one instance, nothing to
install), PostgreSQL for several instances, through the same SQLAlchemy code.

Writes for a user are serialised: on PostgreSQL by a transaction-scoped advisory lock on
the user (``pg_advisory_xact_lock``), so two instances never both admit a task past the
user's limit; on SQLite by ``BEGIN IMMEDIATE`` (SQLite has one writer at a time anyway).
The schema is Alembic's (``migrations/``), upgraded by ``migrate`` when the service starts;
instances starting together take turns.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from sqlalchemy import Engine, create_engine, event, exc, func, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ...errors import InvalidArgument, StoreUnavailable
from .models import DownloadItem, DownloadTask, UserDownloadHistory
from .task import UNFINISHED, Item, Task

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x6465706F74  # "depot": the advisory lock instances take turns on to migrate


def database_url(value: str) -> str:
    """A database URL, or a plain path for SQLite. PostgreSQL URLs use psycopg 3."""
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().resolve()}"
    if value.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


class Repository:
    def __init__(self, url: str, pool_size: int = 10):
        url = database_url(url)
        try:
            parsed = make_url(url)
            self.sqlite = parsed.get_backend_name() == "sqlite"
            if self.sqlite:
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                _sqlite_transactions(engine)
            elif parsed.get_backend_name() == "postgresql":
                engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            else:
                raise InvalidArgument(f"{parsed.render_as_string()}: the tasks' database is SQLite or PostgreSQL")
        except (exc.ArgumentError, ImportError) as error:
            raise InvalidArgument(f"{url!r}: not a database URL the service can use (sqlite:///PATH or "
                                  f"postgresql://...): {error}") from None
        self.engine: Engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(depot_write=True), expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (instances starting together take turns)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _unavailable(), self.engine.execution_options(depot_write=True).begin() as connection:
            if not self.sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with _unavailable(), self._read() as session, session.begin():
            yield session

    @contextmanager
    def writing(self, user_id: str) -> Iterator[Session]:
        """A transaction that is the only one writing for ``user_id`` until it ends;
        committed when the block ends without an exception."""
        with _unavailable(), self._write() as session, session.begin():
            if not self.sqlite:
                session.execute(select(func.pg_advisory_xact_lock(_lock_key(user_id))))
            yield session

    # -- the queries the queue asks -------------------------------------------------------

    @staticmethod
    def task(session: Session, user_id: str, task_id: str, kinds: Iterable[str]) -> DownloadTask | None:
        """The user's task of one of ``kinds``; None for another user's, or no such task."""
        key = uuid_of(task_id)
        found = session.get(DownloadTask, key) if key is not None else None
        return found if found is not None and found.user_id == user_id and found.kind in set(kinds) else None

    @staticmethod
    def queue(session: Session, user_id: str) -> list[DownloadTask]:
        """The user's unfinished download and update tasks, in queue order."""
        return list(session.scalars(
            select(DownloadTask).where(DownloadTask.user_id == user_id, DownloadTask.kind != "verify",
                                       DownloadTask.status.in_(sorted(UNFINISHED)))
            .order_by(DownloadTask.queue_order, DownloadTask.created_at, DownloadTask.id)))

    @staticmethod
    def page(session: Session, user_id: str, kinds: Sequence[str], statuses: Sequence[str], offset: int,
             limit: int) -> tuple[list[DownloadTask], int]:
        """The user's tasks, newest first, and how many there are in all."""
        where = [DownloadTask.user_id == user_id, DownloadTask.kind.in_(kinds)]
        if statuses:
            where.append(DownloadTask.status.in_(statuses))
        total = session.scalar(select(func.count()).select_from(DownloadTask).where(*where)) or 0
        rows = session.scalars(select(DownloadTask).where(*where)
                               .order_by(DownloadTask.created_at.desc(), DownloadTask.id).offset(offset).limit(limit))
        return list(rows), total

    @staticmethod
    def items(session: Session, task: DownloadTask, ids: Sequence[str] = (), paths: Sequence[str] = ()
              ) -> list[DownloadItem]:
        """Items of ``task`` by id or path (only those asked for: a report names a few)."""
        uuids = [u for u in (uuid_of(i) for i in ids) if u is not None]
        clauses = []
        if uuids:
            clauses.append(DownloadItem.id.in_(uuids))
        if paths:
            clauses.append(DownloadItem.relative_path.in_(list(paths)))
        if not clauses:
            return []
        return list(session.scalars(select(DownloadItem).where(DownloadItem.download_task_id == task.id,
                                                               or_(*clauses))))

    @staticmethod
    def installed(session: Session, user_id: str, product_id: str) -> UserDownloadHistory | None:
        """The user's last completed download or update of the product."""
        return session.scalars(select(UserDownloadHistory).where(
            UserDownloadHistory.user_id == user_id, UserDownloadHistory.product_id == product_id,
            UserDownloadHistory.status == "completed").order_by(UserDownloadHistory.completed_at.desc()).limit(1)
        ).first()

    @staticmethod
    def item_bytes(session: Session, task: DownloadTask) -> int:
        # PostgreSQL's sum of bigints is a numeric, which comes back as a Decimal
        return int(session.scalar(select(func.coalesce(func.sum(DownloadItem.downloaded_bytes), 0))
                                  .where(DownloadItem.download_task_id == task.id)) or 0)


@contextmanager
def _unavailable() -> Iterator[None]:
    """The database down, unreachable or locked for too long: STORE_UNAVAILABLE (503), not a
    server error."""
    try:
        yield
    except exc.OperationalError as error:
        raise StoreUnavailable(f"the tasks' database: {str(error.orig or error).strip()}") from None


def snapshot(row: DownloadTask, position: int | None = None, with_items: bool = False) -> Task:
    """A task row as the frozen value handed out."""
    return Task(id=str(row.id), user_id=row.user_id, kind=row.kind, product_id=row.product_id,
                version_id=row.version_id, from_version_id=row.from_version_id, target_path=row.target_path,
                status=row.status, priority=row.priority, total_size_bytes=row.total_size_bytes,
                downloaded_bytes=row.downloaded_bytes, error_code=row.error_code, error_message=row.error_message,
                created_at=_utc(row.created_at), updated_at=_utc(row.updated_at), queue_position=position,
                items=tuple(item_snapshot(i) for i in row.items) if with_items else None)


def item_snapshot(row: DownloadItem) -> Item:
    return Item(id=str(row.id), task_id=str(row.download_task_id), relative_path=row.relative_path,
                status=row.status, downloaded_bytes=row.downloaded_bytes, total_size_bytes=row.total_size_bytes,
                expected_hash_sha256=row.expected_hash_sha256, retry_count=row.retry_count, position=row.position,
                operation=row.operation, error_code=row.error_code, updated_at=_utc(row.updated_at))


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def uuid_of(value: str) -> uuid.UUID | None:
    """An id as given (any of the forms a UUID is written in), or None if it is not one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _lock_key(user_id: str) -> int:
    """A signed 64-bit advisory lock key for a user, the same in every instance."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big", signed=True)


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite: write-ahead logging (readers never wait for the writer), foreign keys on,
    and transactions begun by SQLAlchemy: ``BEGIN IMMEDIATE`` for writes, so that two
    writers queue on the lock instead of failing when they both upgrade a read."""

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # the driver begins nothing: SQLAlchemy does, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get("depot_write")
                                   else "BEGIN")
