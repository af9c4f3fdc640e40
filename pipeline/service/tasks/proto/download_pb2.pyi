from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthorizeDownloadRequest(_message.Message):
    __slots__ = ("user_id", "product_id", "version_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    product_id: str
    version_id: str
    def __init__(self, user_id: _Optional[str] = ..., product_id: _Optional[str] = ..., version_id: _Optional[str] = ...) -> None: ...

class AuthorizeDownloadResponse(_message.Message):
    __slots__ = ("authorized", "download_session_id", "manifest", "sources", "error_message", "error_code")
    AUTHORIZED_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    authorized: bool
    download_session_id: str
    manifest: FileManifest
    sources: _containers.RepeatedCompositeFieldContainer[CDNSource]
    error_message: str
    error_code: str
    def __init__(self, authorized: _Optional[bool] = ..., download_session_id: _Optional[str] = ..., manifest: _Optional[_Union[FileManifest, _Mapping]] = ..., sources: _Optional[_Iterable[_Union[CDNSource, _Mapping]]] = ..., error_message: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class NotifyNewVersionRequest(_message.Message):
    __slots__ = ("product_id", "version_id", "manifest")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    version_id: str
    manifest: FileManifest
    def __init__(self, product_id: _Optional[str] = ..., version_id: _Optional[str] = ..., manifest: _Optional[_Union[FileManifest, _Mapping]] = ...) -> None: ...

class FileManifest(_message.Message):
    __slots__ = ("product_id", "version_id", "file_entries")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    version_id: str
    file_entries: _containers.RepeatedCompositeFieldContainer[FileEntry]
    def __init__(self, product_id: _Optional[str] = ..., version_id: _Optional[str] = ..., file_entries: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("path", "type", "size", "hash_sha256", "executable", "target", "chunks")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    HASH_SHA256_FIELD_NUMBER: _ClassVar[int]
    EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    path: str
    type: str
    size: int
    hash_sha256: str
    executable: bool
    target: str
    chunks: _containers.RepeatedCompositeFieldContainer[FileChunk]
    def __init__(self, path: _Optional[str] = ..., type: _Optional[str] = ..., size: _Optional[int] = ..., hash_sha256: _Optional[str] = ..., executable: _Optional[bool] = ..., target: _Optional[str] = ..., chunks: _Optional[_Iterable[_Union[FileChunk, _Mapping]]] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("offset", "size", "id", "stored_size", "chunk_offset", "chunk_size")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STORED_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    offset: int
    size: int
    id: str
    stored_size: int
    chunk_offset: int
    chunk_size: int
    def __init__(self, offset: _Optional[int] = ..., size: _Optional[int] = ..., id: _Optional[str] = ..., stored_size: _Optional[int] = ..., chunk_offset: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class CDNSource(_message.Message):
    __slots__ = ("name", "region", "priority", "url", "healthy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    name: str
    region: str
    priority: int
    url: str
    healthy: bool
    def __init__(self, name: _Optional[str] = ..., region: _Optional[str] = ..., priority: _Optional[int] = ..., url: _Optional[str] = ..., healthy: _Optional[bool] = ...) -> None: ...
