"""The request shape the lean device path serves, and everything it leaves to aiohttp."""

from __future__ import annotations

import pytest

from gateway.httphead import MAX_HEAD, OTHER, Head, read_head

WRITE = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Type:  text/plain \r\nContent-Length: 3\r\n\r\nabc"


def test_a_plain_device_write_is_read_with_its_fields_and_body() -> None:
    head = read_head(b"junk" + WRITE, 4, 1024)
    assert isinstance(head, Head)
    assert head.path == "/a"
    assert head.fields == {"host": "h", "content-type": "text/plain", "content-length": "3"}
    assert (b"junk" + WRITE)[head.body_start : head.body_end] == b"abc"


@pytest.mark.parametrize("cut", [1, 4, 5, 20, WRITE.index(b"\r\n\r\n") + 3])
def test_a_head_not_complete_yet_waits_for_more(cut: int) -> None:
    assert read_head(WRITE[:cut], 0, 1024) is None


def test_a_body_not_complete_yet_is_told_by_its_end() -> None:
    head = read_head(WRITE[:-2], 0, 1024)
    assert isinstance(head, Head)
    assert head.body_end == len(WRITE)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"G",  # not a POST: handed over without waiting for the rest
        b"GET / HTTP/1.1\r\n",
        b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        WRITE.replace(b"HTTP/1.1", b"HTTP/1.0"),
        WRITE.replace(b"/a", b"/a?b=1"),
        WRITE.replace(b"/a", b"/%61"),
        WRITE.replace(b"/a", b"/./a"),
        WRITE.replace(b"/a", b"//a"),
        WRITE.replace(b"/a", b"*"),
        WRITE.replace(b"Host: h\r\n", b""),
        WRITE.replace(b"Host: h", b"Host: h\xc3\xa9"),
        WRITE.replace(b"Host: h", b"Host: h\x01"),
        WRITE.replace(b"Host: h", b"Host: h\rx"),  # a bare CR inside a value
        WRITE.replace(b"Host: h", b": x\r\nHost: h"),  # a field without a name
        WRITE.replace(b"Host: h", b"Host h"),
        WRITE.replace(b"Host: h", b"Host : h"),
        WRITE.replace(b"Host: h\r\n", b"Host: h\r\n x\r\n"),
        WRITE.replace(b"Host: h\r\n", b"Host: h\r\nHOST: i\r\n"),
        WRITE.replace(b"Content-Length: 3", b"Content-Length: 03"),
        WRITE.replace(b"Content-Length: 3", b"Content-Length: +3"),
        WRITE.replace(b"Content-Length: 3", b"Content-Length: 3, 3"),
        WRITE.replace(b"Content-Length: 3\r\n", b""),
        WRITE.replace(b"Host: h", b"Transfer-Encoding: chunked\r\nHost: h"),
        WRITE.replace(b"Host: h", b"Expect: 100-continue\r\nHost: h"),
        WRITE.replace(b"Host: h", b"Upgrade: websocket\r\nHost: h"),
        WRITE.replace(b"Host: h", b"Connection: close\r\nHost: h"),
        WRITE.replace(b"Host: h", b"Connection: upgrade\r\nHost: h"),
        WRITE.replace(b"Content-Length: 3", b"Content-Length: 2000"),  # above max_body
        b"POST / HTTP/1.1\r\nX: " + b"y" * MAX_HEAD,  # a head too long to be a device's
    ],
)
def test_anything_else_is_aiohttps(request_bytes: bytes) -> None:
    assert read_head(request_bytes, 0, 1024) is OTHER


def test_keep_alive_is_the_served_shape() -> None:
    kept = WRITE.replace(b"Host: h", b"Connection: Keep-Alive\r\nHost: h")
    assert isinstance(read_head(kept, 0, 1024), Head)


def test_blanks_around_a_value_are_not_part_of_it() -> None:
    """Spaces and tabs after the colon and at the end are dropped (RFC 9110 5.5), those inside
    kept; an empty value is a value."""
    fields = b"Host: h\r\nX-Empty:\r\nX-Tabs:\t a \tb\t \r\n"
    head = read_head(WRITE.replace(b"Host: h\r\n", fields), 0, 1024)
    assert isinstance(head, Head)
    assert head.fields == {
        "host": "h",
        "x-empty": "",
        "x-tabs": "a \tb",
        "content-type": "text/plain",
        "content-length": "3",
    }
