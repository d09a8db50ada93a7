"""What the emulated account's objects are made of when they are new: the first start's
provisioning, a new SIM's derived identifiers, credentials' hashes and token lifetimes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from harvest.domain import Sim, SimStatus

#: ``tokenTimeoutSeconds``: default and maximum (OpenAPI ``AuthRequest``, spec A2).
TOKEN_TIMEOUT_DEFAULT_S = 86_400
TOKEN_TIMEOUT_MAX_S = 172_800


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What the first start on an empty data dir creates (overridable in settings)."""

    operator_id: str
    auth_key_id: str
    auth_key: str
    email: str
    password: str
    imsi: str
    session_address: str


def utf8(text: str) -> bytes:
    """UTF-8 that never fails: JSON can carry lone surrogates (``"\\ud800"``), and header
    values arrive as arbitrary text; neither may turn a refusal into a 500."""
    return text.encode("utf-8", "surrogatepass")


def hash_secret(secret: str) -> str:
    """A salted SHA-256; an emulator needs no slow hash, and auth runs on every CLI command."""
    salt = secrets.token_hex(8)
    return f"{salt}${hashlib.sha256(utf8(salt + secret)).hexdigest()}"


def check_secret(secret: str, stored: str) -> bool:
    salt, _, digest = stored.partition("$")
    candidate = hashlib.sha256(utf8(salt + secret)).hexdigest()
    return hmac.compare_digest(candidate, digest)


def derived_sim_id(imsi: str) -> str:
    """A 19-digit ICCID-like id derived from the IMSI (the emulator's SIMs have one IMSI)."""
    return "8900" + imsi.rjust(15, "0")


@dataclass(frozen=True, slots=True)
class NewSim:
    """What :meth:`Registry.create_sims` is asked to provision; ``None``: the default."""

    operator_id: str
    imsi: str | None = None
    group_id: str | None = None
    status: SimStatus = SimStatus.READY
    session_address: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class Either:
    """Addresses taken in either of two collections (the registry's, a batch's own)."""

    def __init__(self, first: Container[str], second: Container[str]) -> None:
        self._first, self._second = first, second

    def __contains__(self, item: object) -> bool:
        return item in self._first or item in self._second


def new_sim(
    operator_id: str,
    imsi: str,
    group_id: str | None,
    status: SimStatus,
    session_address: str | None,
    tags: Mapping[str, str],
    now: int,
) -> Sim:
    """A SIM as provisioning makes it: ICCID-like id and MSISDN derived from the IMSI."""
    return Sim(
        imsi=imsi,
        sim_id=derived_sim_id(imsi),
        iccid=derived_sim_id(imsi),
        msisdn="999" + imsi[-10:].rjust(10, "0"),
        operator_id=operator_id,
        status=status,
        group_id=group_id,
        tags={"name": "", **tags},
        session_address=session_address,
        created_ms=now,
        modified_ms=now,
    )
