"""The ``Range`` header of a download (RFC 9110 section 14): firmware-update code downloads
an image in pieces (notes real-service.md section 5.1).

One byte range is honoured (``206``); a range that starts past the end is unsatisfiable
(``416``). A header this module cannot read, another unit, or several ranges at once, is
ignored and the whole file is sent, as RFC 9110 section 14.2 allows.
"""

from __future__ import annotations

from dataclasses import dataclass


class RangeNotSatisfiable(ValueError):
    """No byte of the requested range exists (``416``)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def _digits(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for, or ``None`` for the whole file; raises
    :class:`RangeNotSatisfiable` when the range has no byte in the file."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        return None
    first, last = _digits(first_text), _digits(last_text)
    if first_text.strip() == "":  # a suffix: the last N bytes
        if last is None:
            return None
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{last} of a {size}-byte file")
        return ByteRange(max(0, size - last), size - 1, size)
    if first is None or (last_text.strip() and last is None):
        return None
    if last is not None and last < first:
        return None  # invalid syntax (RFC 9110 section 14.1.1): ignored
    if first >= size:
        raise RangeNotSatisfiable(f"bytes={first}- of a {size}-byte file")
    end = size - 1 if last is None else min(last, size - 1)
    return ByteRange(first, end, size)
