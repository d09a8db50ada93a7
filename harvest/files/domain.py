"""Harvest Files' values: paths and their limits, the group's switch and default path, and one
stored file or directory (:class:`FileRecord`).

Paths are absolute, ``/``-separated and normalised the way soracom-cli sends them: empty
segments (leading, trailing and double slashes) are dropped (notes real-service.md section 5.2).
A directory's path ends with ``/``; the root is ``/``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from quotas.limits import FILES_MAX_DEPTH, FILES_MAX_PATH_BYTES

#: The group configuration namespace of Harvest Files (notes real-service.md section 5.1).
FILES_NAMESPACE: Final = "SoracomHarvestFiles"
ENABLED_KEY: Final = "enabled"
#: The default path's key in that namespace: SORACOM does not publish it (notes section 8,
#: question 11), so the name is the emulator's (docs/files.md).
DEFAULT_PATH_KEY: Final = "defaultPath"
#: The default path when the group sets none: the emulator's choice (docs/files.md).
DEFAULT_PATH: Final = "/:imsi/:time"
ROOT: Final = "/"


class Scope(enum.StrEnum):
    """``private``: the operator's files; ``public``: SORACOM's, read-only (OpenAPI)."""

    PRIVATE = "private"
    PUBLIC = "public"


class FilePathError(ValueError):
    """A path the service refuses: empty, ``.``/``..``, too long or too deep."""


def _segments(raw: str) -> list[str]:
    segments = [s for s in raw.split("/") if s]
    for segment in segments:
        if segment in (".", ".."):
            raise FilePathError(f"a path may not contain {segment!r} segments")
        if any(ord(c) < 0x20 or c == "\x7f" for c in segment):
            raise FilePathError("a path may not contain control characters")
    return segments


def _checked(path: str, directories: int) -> str:
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > FILES_MAX_PATH_BYTES:
        raise FilePathError(f"the path is {size} bytes; the limit is {FILES_MAX_PATH_BYTES} bytes")
    if directories > FILES_MAX_DEPTH:
        raise FilePathError(
            f"the path is {directories} directories deep; the limit is {FILES_MAX_DEPTH}"
        )
    return path


def file_path(raw: str) -> str:
    """A file's normalised path (``a//b.txt`` is ``/a/b.txt``); :class:`FilePathError` if it
    names no file or breaks a limit (1,024 bytes, 16 directories: notes section 2)."""
    segments = _segments(raw)
    if not segments:
        raise FilePathError("the path names no file")
    return _checked("/" + "/".join(segments), len(segments) - 1)


def directory_path(raw: str) -> str:
    """A directory's normalised path, ending with ``/`` (``""`` and ``/`` are the root)."""
    segments = _segments(raw)
    if not segments:
        return ROOT
    return _checked("/" + "/".join(segments) + "/", len(segments))


def parent_of(path: str) -> str:
    """The directory holding ``path`` (a file's or a directory's)."""
    head = path[:-1] if path.endswith("/") else path
    return head[: head.rindex("/") + 1]


def name_of(path: str) -> str:
    """The entry's ``filename``: the last segment, with ``/`` after a directory's, which is
    how soracom-lib tells directories apart (notes section 5.2)."""
    return path[len(parent_of(path)) :]


def ancestors(path: str) -> list[str]:
    """Every directory above ``path`` but the root, outermost first."""
    found: list[str] = []
    directory = parent_of(path)
    while directory != ROOT:
        found.append(directory)
        directory = parent_of(directory)
    return found[::-1]


def expand_default_path(template: str, imsi: str, now_ms: int) -> str | None:
    """The group's default path with ``:imsi`` and ``:time`` (upload time, UNIX ms) filled in;
    a trailing ``/`` is ignored. ``None`` when the template does not start with ``/``: such an
    upload gets ``404`` (notes section 5.1)."""
    if not template.startswith("/"):
        return None
    return template.replace(":imsi", imsi).replace(":time", str(now_ms)).rstrip("/")


def files_settings(configuration: Mapping[str, Mapping[str, Any]]) -> tuple[bool, str]:
    """Whether a group's configuration switches Harvest Files on, and its default path."""
    namespace = configuration.get(FILES_NAMESPACE, {})
    default = namespace.get(DEFAULT_PATH_KEY)
    return namespace.get(ENABLED_KEY) is True, default if isinstance(default, str) else DEFAULT_PATH


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One stored file, or one directory (``path`` ends with ``/``; no body)."""

    operator_id: str
    path: str
    content_type: str
    size: int
    #: The body's MD5 in hex (what an S3-style ETag is for a single-part upload).
    etag: str
    created_ms: int
    modified_ms: int
    #: Where the body is (the blob store's name); ``None`` for a directory.
    blob: str | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"file path {self.path!r} must start with /")
        if self.size < 0:
            raise ValueError("a file's size is not negative")

    @property
    def is_directory(self) -> bool:
        return self.path.endswith("/")

    @property
    def parent(self) -> str:
        return parent_of(self.path)

    def quoted_etag(self) -> str:
        """The ``ETag`` header's value (a quoted string, RFC 9110 section 8.8.3)."""
        return f'"{self.etag}"'

    def to_wire(self) -> dict[str, Any]:
        """SORACOM's ``FileEntry``."""
        entry: dict[str, Any] = {
            "filePath": self.path,
            "filename": name_of(self.path),
            "directory": self.parent,
            "isDirectory": self.is_directory,
            "createdTime": self.created_ms,
            "lastModifiedTime": self.modified_ms,
        }
        if not self.is_directory:
            entry["contentType"] = self.content_type
            entry["contentLength"] = self.size
            entry["etag"] = self.etag
        return entry


def directory_record(operator_id: str, path: str, now_ms: int) -> FileRecord:
    return FileRecord(operator_id, path, "", 0, "", now_ms, now_ms)
