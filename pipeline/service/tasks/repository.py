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
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence, cast

from sqlalchemy import Engine, Table, bindparam, create_engine, event, exc, func, insert, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ...errors import InvalidArgument, StoreUnavailable
from .models import DownloadItem, DownloadTask, UserDownloadHistory
from .running import OPEN, RUNNING, Progress
from .task import UNFINISHED, Item, Task

if TYPE_CHECKING:
    from .queue import NewItem

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x6465706F74  # "depot": the advisory lock instances take turns on to migrate
_TASKS = cast(Table, DownloadTask.__table__)
_ITEMS = cast(Table, DownloadItem.__table__)
_ADD_ITEMS = text(
    "INSERT INTO download_items (id, download_task_id, relative_path, status, downloaded_bytes, total_size_bytes, "
    "expected_hash_sha256, retry_count, created_at, updated_at, position, operation) "
    "SELECT v.id, :task, v.path, 'pending', 0, v.size, v.hash, 0, :at, :at, v.n - 1, v.operation "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:paths AS text[]), CAST(:sizes AS bigint[]), CAST(:hashes AS text[]), "
    "CAST(:operations AS text[])) WITH ORDINALITY AS v(id, path, size, hash, operation, n)")
_STATES = text(  # ids as text: nothing to convert for thousands of rows
    "SELECT t.id::text, t.status, q.place FROM download_tasks AS t LEFT JOIN ("
    " SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY queue_order, created_at, id) - 1 AS place"
    " FROM download_tasks WHERE user_id IN (SELECT user_id FROM download_tasks WHERE id = ANY(CAST(:ids AS uuid[])))"
    f" AND kind <> 'verify' AND status IN ({', '.join(repr(s) for s in sorted(UNFINISHED))})) AS q ON q.id = t.id "
    "WHERE t.id = ANY(CAST(:ids AS uuid[]))")
_QUEUE = (select(DownloadTask)  # built once: building a statement costs more than running it
          .where(DownloadTask.user_id == bindparam("user"), DownloadTask.kind != "verify",
                 DownloadTask.status.in_(sorted(UNFINISHED)))
          .order_by(DownloadTask.queue_order, DownloadTask.created_at, DownloadTask.id))


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
    def writing(self, user_id: str | None) -> Iterator[Session]:
        """A transaction that is the only one writing for ``user_id`` until it ends (None:
        for no user in particular, the progress writer's); committed when the block ends
        without an exception."""
        with _unavailable(), self._write() as session, session.begin():
            if not self.sqlite and user_id is not None:
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
        return list(session.scalars(_QUEUE, {"user": user_id}))

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
    def items(session: Session, task_id: uuid.UUID, ids: Sequence[str] = (), paths: Sequence[str] = ()
              ) -> list[DownloadItem]:
        """Items of a task by id or path (only those asked for: a report names a few)."""
        uuids = [u for u in (uuid_of(i) for i in ids) if u is not None]
        clauses = []
        if uuids:
            clauses.append(DownloadItem.id.in_(uuids))
        if paths:
            clauses.append(DownloadItem.relative_path.in_(list(paths)))
        if not clauses:
            return []
        return list(session.scalars(select(DownloadItem).where(DownloadItem.download_task_id == task_id,
                                                               or_(*clauses))))

    @staticmethod
    def add(session: Session, task: DownloadTask, items: Sequence[NewItem]) -> None:
        """A new task (an object never added to the session) and its items, in their
        order, without the session's bookkeeping: two statements on PostgreSQL (the items
        as arrays), on SQLite one a row in process."""
        session.execute(insert(_TASKS), {c.key: getattr(task, c.key) for c in _TASKS.columns})
        if not items:
            return
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_ADD_ITEMS, {
                "task": task.id, "at": task.created_at, "ids": [uuid.uuid4() for _ in items],
                "paths": [i.relative_path for i in items], "sizes": [i.total_size_bytes for i in items],
                "hashes": [i.expected_hash_sha256 for i in items], "operations": [i.operation for i in items]})
            return
        session.execute(insert(_ITEMS), [
            {"id": uuid.uuid4(), "download_task_id": task.id, "relative_path": i.relative_path, "status": "pending",
             "downloaded_bytes": 0, "total_size_bytes": i.total_size_bytes,
             "expected_hash_sha256": i.expected_hash_sha256, "retry_count": 0, "created_at": task.created_at,
             "updated_at": task.created_at, "position": n, "operation": i.operation, "error_code": None}
            for n, i in enumerate(items)])

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


    # -- progress written behind (running.py) ----------------------------------------------

    def write_progress(self, session: Session, progress: Sequence[Progress], wait: bool) -> list[Progress]:
        """Write the tasks' and items' bytes reported: a task's only while it runs, an
        item's only while it is pending or downloading, and neither over a change newer
        than the report. On PostgreSQL, ``wait`` False passes over the tasks a transaction
        holds: their progress is returned, to be written next time."""
        skipped: list[Progress] = []
        if not self.sqlite and not wait and progress:
            free = {str(i) for i in session.scalars(text(
                "SELECT id FROM download_tasks WHERE id = ANY(:ids) FOR UPDATE SKIP LOCKED"),
                {"ids": [uuid.UUID(p.task_id) for p in progress]})}
            skipped = [p for p in progress if p.task_id not in free]
            progress = [p for p in progress if p.task_id in free]
        tasks = [(uuid.UUID(p.task_id), p.downloaded_bytes, p.at) for p in progress]
        items = [(uuid.UUID(i), moved, at) for p in progress for i, (moved, at) in p.items.items()]
        for table, statuses, rows, extra in ((_TASKS, RUNNING, tasks, {}), (_ITEMS, OPEN, items,
                                              {"status": "downloading", "error_code": None})):
            if not rows:
                continue
            if self.sqlite:  # in process: one statement a row costs no round trip
                c = table.c
                session.execute(update(table).where(c.id == bindparam("k"), or_(*(c.status == s for s in statuses)),
                                                    c.updated_at <= bindparam("at"))
                                .values(downloaded_bytes=bindparam("b"), updated_at=bindparam("at"), **extra),
                                [{"k": k, "b": b, "at": at} for k, b, at in rows])
            else:  # one statement for them all
                sets = "".join(f", {name} = :{name}" for name in extra)
                session.execute(text(
                    f"UPDATE {table.name} AS t SET downloaded_bytes = v.b, updated_at = v.at{sets} "
                    "FROM unnest(CAST(:ks AS uuid[]), CAST(:bs AS bigint[]), CAST(:ats AS timestamptz[])) "
                    "AS v(k, b, at) "
                    f"WHERE t.id = v.k AND t.status IN ({', '.join(repr(s) for s in statuses)}) AND t.updated_at <= v.at"),
                    {"ks": [r[0] for r in rows], "bs": [r[1] for r in rows], "ats": [r[2] for r in rows], **extra})
        return skipped

    def running_states(self, task_ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
        """Each task's status and place in its user's queue (None: not in it), as the
        queue computes them, in one query for them all (PostgreSQL)."""
        with self.reading() as s:
            return {key: (status, place) for key, status, place in s.execute(_STATES, {"ids": list(task_ids)})}


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
