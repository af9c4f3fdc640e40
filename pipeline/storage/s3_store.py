"""A store under an S3 prefix (AWS or any S3 API: MinIO, Ceph, moto). Objects appear only
when their upload completes. Conditional writes are S3's own: ``If-None-Match: *`` for
create-if-absent and ``If-Match: <ETag>`` for compare-and-swap, decided by the server, so
two racing writers can never both win."""

from __future__ import annotations

import contextlib
import time
from typing import BinaryIO, Iterator

from fsspec.asyn import sync

from ..errors import NotFound, StoreUnavailable
from . import retry
from .base import Tagged
from .translate import backend_errors, s3_code_of, status_of
from .fsspec_store import FsspecStore

PRECONDITION_FAILED = 412
CONFLICT = 409  # another conditional write to the key is in flight: try again
CONFLICT_RETRIES = 4  # after the first try
CONFLICT_BACKOFF = 0.05  # seconds before the first retry; doubles, with jitter


class _Conflict(Exception):
    """S3 answered 409: another conditional write to the key was in flight."""


class S3Store(FsspecStore):
    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, _, path = self._path(key).partition("/")
        return bucket, path

    def _no_bucket(self) -> StoreUnavailable:
        return StoreUnavailable(f"{self.url}: the bucket {self.root.split('/', 1)[0]!r} does not exist")

    def get(self, key: str) -> bytes:
        # One GET: s3fs's cat_file asks for the size first (a HEAD), to split large
        # objects into ranges; chunks and documents are small enough for one request.
        with self._translated(key):
            return self.fs.cat_file(self._path(key), max_concurrency=1)

    def has(self, key: str) -> bool:
        # Not fs.isfile: it answers False for every error, and an unreachable store is
        # not an empty one.
        with self._translated(key):
            try:
                return self.fs.info(self._path(key))["type"] == "file"
            except FileNotFoundError as exc:
                if s3_code_of(exc) == "NoSuchBucket":
                    raise self._no_bucket() from None
                return False

    def _find(self, prefix: str) -> dict[str, dict]:
        found = super()._find(prefix)
        if not found:  # an empty listing must not hide a missing bucket
            with self._translated(prefix):
                try:
                    self.fs.call_s3("head_bucket", Bucket=self.root.split("/", 1)[0])
                except FileNotFoundError:
                    raise self._no_bucket() from None
        return found

    def get_tagged(self, key: str) -> Tagged:
        bucket, path = self._bucket_key(key)

        async def get() -> Tagged:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=path)
            async with resp["Body"] as body:
                return Tagged(await body.read(), resp["ETag"])

        with self._translated(key):
            return sync(self.fs.loop, get)

    def put_if_match(self, key: str, data: bytes, tag: str | None) -> bool:
        try:
            return retry.policy(CONFLICT_RETRIES, CONFLICT_BACKOFF, on=(_Conflict,))(
                lambda: self._put_conditional(key, data, tag))
        except _Conflict:
            raise StoreUnavailable(f"{self.url_of(key)}: conditional writes kept conflicting; try again") from None

    def _put_conditional(self, key: str, data: bytes, tag: str | None) -> bool:
        bucket, path = self._bucket_key(key)
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        try:
            with self._translated(key):
                try:
                    self.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=bytes(data), **condition)
                    return True
                except FileNotFoundError as exc:
                    if s3_code_of(exc) == "NoSuchBucket":
                        raise self._no_bucket() from None
                    return False  # If-Match on an object that is gone
                except backend_errors() as exc:
                    status = status_of(exc)
                    if status == PRECONDITION_FAILED:
                        # A stale tag, even when the bytes there equal ours: racing writers
                        # of the same bytes must not both think they moved the object. A
                        # swap retried after its reply was lost meets its own write and
                        # gets False too; callers read again and decide.
                        return False
                    if status == CONFLICT:
                        raise _Conflict() from None
                    raise
        finally:
            self.fs.invalidate_cache(self._path(key))

    def _head(self, key: str) -> dict:
        """The object's size and age as the server has them now (no cached listing)."""
        bucket, path = self._bucket_key(key)
        with self._translated(key):
            return self.fs.call_s3("head_object", Bucket=bucket, Key=path)

    def touch(self, key: str, older_than: float = 0.0) -> int:
        head = self._head(key)
        if time.time() - head["LastModified"].timestamp() > older_than:
            bucket, path = self._bucket_key(key)
            with self._translated(key):  # a copy onto itself: the same bytes, written now
                self.fs.call_s3("copy_object", Bucket=bucket, Key=path, CopySource={"Bucket": bucket, "Key": path},
                                MetadataDirective="REPLACE")
            self.fs.invalidate_cache(self._path(key))
        return int(head["ContentLength"])

    def prune(self, key: str, written_before: float) -> bool:
        # S3 has no delete conditioned on age: the age is read just before, which leaves a
        # writer's touch a window of one request to fall into.
        try:
            if self._head(key)["LastModified"].timestamp() >= written_before:
                return False
        except NotFound:
            return False
        self.delete(key)
        return True

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        # Parts are uploaded as they come; the object is published only on commit.
        with self._translated(key):
            f = self.fs.open(self._path(key), "wb", autocommit=False)
        try:
            yield f
            with self._translated(key):
                f.close()
                f.commit()
        except BaseException:
            f.discard()  # aborts the multipart upload
            f.closed = True  # nothing left to flush
            raise
