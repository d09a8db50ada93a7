"""The HTTP exchanges of the testing client: one request on its own connection, optionally
from a SIM's session address, and the error a helper raises for an unexpected answer."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any

from harvest.control_client import Reply, decode_body
from harvest.testing.server import TIMEOUT_S


class HarvestEmulatorError(AssertionError):
    """The emulator did not answer as a helper expected; the message has its answer.

    An ``AssertionError``, so pytest shows it as a failed expectation of the test.
    """


def raw_http(
    host: str,
    port: int,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    source: str | None = None,
    timeout: float = TIMEOUT_S,
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (optionally from ``source``, a SIM's address): the
    status, the headers (lower-case names) and the body as it came."""
    connection = http.client.HTTPConnection(
        host, port, timeout=timeout, source_address=None if source is None else (source, 0)
    )
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        raw = response.read()
        found = {name.lower(): value for name, value in response.getheaders()}
        return response.status, found, raw
    finally:
        connection.close()


def http_call(
    host: str,
    port: int,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    source: str | None = None,
    timeout: float = TIMEOUT_S,
) -> Reply:
    """:func:`raw_http`, its body decoded (JSON when it says so, else text)."""
    status, found, raw = raw_http(
        host, port, method, target, body=body, headers=headers, source=source, timeout=timeout
    )
    return Reply(status, decode_body(raw, found.get("content-type", "")), found)


def expect(reply: Reply, what: str, *statuses: int) -> Any:
    if reply.status not in statuses:
        raise HarvestEmulatorError(f"{what}: {reply.status} {reply.body!r}")
    return reply.body
