"""The one shape of HTTP request the lean device path serves, recognised strictly.

A device write as firmware and ``curl`` send it: ``POST``, HTTP/1.1, a plain path, one
``Content-Length`` and no ``Transfer-Encoding``, ``Expect``, ``Upgrade`` or ``Connection: close``.
:func:`read_head` says whether the bytes at the start of a buffer are such a request (its
:class:`Head`), not complete yet (``None``), or anything else (:data:`OTHER`): every request
that is not plainly that shape goes to aiohttp, which answers it as it always did (its ``400``
for a malformed request included). This module therefore never has to be a whole HTTP parser:
it only has to be sure, and to say "not mine" whenever it is not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Larger heads go to aiohttp, whose limits (8,190 bytes a line) then apply as they always did.
MAX_HEAD: Final = 8190

# A request line with a path of unreserved and sub-delimiter characters only: no ``%`` escape,
# query or fragment, so the path aiohttp would report (decoded, normalised) is these very bytes.
_REQUEST_LINE: Final = re.compile(rb"POST (/[-A-Za-z0-9._~!$&'()*+,;=:@/]*) HTTP/1\.1")
# Header fields, each ended by CRLF: a token, a colon, a value of visible ASCII, spaces and tabs
# (RFC 9110 5.5; no obs-fold, no control character, no byte above 0x7e). One match checks every
# field and _PAIRS takes them apart: a match per field cost half as much again (11.4 against
# 7.8 us for a head of six fields).
_FIELDS: Final = re.compile(rb"(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\x20-\x7e\t]*\r\n)*")
_PAIRS: Final = re.compile(r"([^:]+):[ \t]*([^\r]*)\r\n")
# Fields that make a request another shape than the one served here.
_OTHER_SHAPES: Final = frozenset({"transfer-encoding", "expect", "upgrade"})


@dataclass(slots=True)
class Head:
    """A device write's request head: its path, the header fields (names in lower case,
    values as sent without surrounding blanks) and where the body starts and ends in the
    buffer."""

    path: str
    fields: dict[str, str]
    body_start: int
    body_end: int


class _Other:
    """The answer for a request this module does not serve (see the module docstring)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OTHER"


OTHER: Final = _Other()


def read_head(buffer: bytes | bytearray, start: int, max_body: int) -> Head | _Other | None:
    """The request that begins at ``start`` of ``buffer``: a :class:`Head` when it is the
    served shape with a body of at most ``max_body`` bytes, ``None`` while its head is not
    complete, :data:`OTHER` for anything else. The body may not have arrived yet: compare
    ``body_end`` with the buffer's length."""
    end = buffer.find(b"\r\n\r\n", start, start + MAX_HEAD + 4)
    if end < 0:
        if len(buffer) - start > MAX_HEAD + 4:
            return OTHER
        # Only a POST can be ours: anything else is handed over without waiting for more.
        prefix = bytes(buffer[start : start + 5])
        return None if b"POST "[: len(prefix)] == prefix else OTHER
    first = buffer.find(b"\r\n", start, end + 2)
    request_line = _REQUEST_LINE.fullmatch(buffer, start, first)
    if request_line is None:
        return OTHER
    path = request_line[1].decode("ascii")
    if "//" in path or "/." in path:  # aiohttp would normalise it: not the same path
        return OTHER
    if _FIELDS.fullmatch(buffer, first + 2, end + 2) is None:
        return OTHER
    pairs = _PAIRS.findall(buffer[first + 2 : end + 2].decode("ascii"))  # ASCII, as matched
    fields = {name.lower(): value.rstrip(" \t") for name, value in pairs}
    if len(fields) < len(pairs):  # a repeated field: which one counts is aiohttp's to say
        return OTHER
    if not _OTHER_SHAPES.isdisjoint(fields) or "host" not in fields:
        return OTHER
    connection = fields.get("connection")
    if connection is not None and connection.lower() != "keep-alive":
        return OTHER
    length = fields.get("content-length")
    # Digits only, no leading zero (aiohttp's parser takes some spellings this one need not).
    if length is None or not length.isdigit() or len(length) > 9:
        return OTHER
    if len(length) > 1 and length[0] == "0":
        return OTHER
    size = int(length)
    if size > max_body:
        return OTHER
    body_start = end + 4
    return Head(path, fields, body_start, body_start + size)
