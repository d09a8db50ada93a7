"""Domain values: frozen, slotted dataclasses that validate themselves.

Wire shapes (the JSON the SORACOM API answers with) are built in ``harvest.api.views``; these
classes know nothing of HTTP.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harvest.wire import is_imsi


class ResourceType(enum.StrEnum):
    """``DataEntry.resourceType`` (OpenAPI ``getDataEntries`` path parameter enum)."""

    SUBSCRIBER = "Subscriber"
    LORA_DEVICE = "LoraDevice"
    SIM = "Sim"
    SIGFOX_DEVICE = "SigfoxDevice"
    DEVICE = "Device"
    SORA_CAM = "SoraCam"


class SimStatus(enum.StrEnum):
    """SIM statuses (air-global-terms, Schedule 1(2); OpenAPI ``Subscriber.status``)."""

    READY = "ready"
    ACTIVE = "active"
    INACTIVE = "inactive"
    STANDBY = "standby"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"

    def can_become(self, target: SimStatus) -> bool:
        """Whether the API may move a SIM from this status to ``target``.

        Termination is final; every other status may change to any other (the operator's
        choice, air-global-terms Schedule 1(2)), except back to ``ready``, which only a new SIM
        has.
        """
        return self is not SimStatus.TERMINATED and target is not SimStatus.READY

    @property
    def allows_data(self) -> bool:
        """Whether a device may communicate (air-global-terms Schedule 1(2))."""
        return self in (SimStatus.READY, SimStatus.ACTIVE, SimStatus.STANDBY)


class Transport(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"
    UDP = "udp"


#: The group configuration namespace and key that switch Harvest Data on (spec A1).
HARVEST_NAMESPACE = "SoracomHarvest"
HARVEST_ENABLED_KEY = "enabled"

#: Namespaces accepted by ``putConfigurationParameters`` (OpenAPI path parameter enum).
CONFIGURATION_NAMESPACES = frozenset(
    {
        "SoracomAir",
        "SoracomBeam",
        "SoracomEndorse",
        "SoracomFlux",
        "SoracomFunk",
        "SoracomFunnel",
        "SoracomHarvest",
        "SoracomHarvestFiles",
        "SoracomKrypton",
        "SoracomOrbit",
        "UnifiedEndpoint",
    }
)


def normalise_address(address: str) -> str:
    """The canonical text of an IP address; IPv4-mapped IPv6 becomes plain IPv4.

    Raises ``ValueError`` for anything that is not an IP address.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass(frozen=True, slots=True)
class Operator:
    operator_id: str
    email: str
    password_hash: str
    description: str
    created_ms: int
    updated_ms: int
    #: Contracts by name (``addOperatorContract``); ``harvest`` extends retention.
    contracts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.operator_id.startswith("OP") and len(self.operator_id) >= 3):
            raise ValueError(f"operator id {self.operator_id!r} must start with OP")


@dataclass(frozen=True, slots=True)
class AuthKey:
    key_id: str
    secret_hash: str
    operator_id: str

    def __post_init__(self) -> None:
        if not self.key_id.startswith("keyId-"):
            raise ValueError(f"auth key id {self.key_id!r} must start with keyId-")


@dataclass(frozen=True, slots=True)
class ApiToken:
    token: str
    api_key: str
    operator_id: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Group:
    group_id: str
    operator_id: str
    tags: Mapping[str, str]
    configuration: Mapping[str, Mapping[str, Any]]
    created_ms: int
    modified_ms: int
    #: A number no other version of any group has had in this process: the state tables give
    #: every group they take in a new one (:func:`revised`). Caches of what is derived from a
    #: group key on it, never on ``modified_ms``: under a frozen clock every change happens
    #: in the same millisecond. Not stored, not compared.
    revision: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.configuration) - CONFIGURATION_NAMESPACES
        if unknown:
            raise ValueError(f"unknown configuration namespaces: {sorted(unknown)}")

    @property
    def harvest_enabled(self) -> bool:
        return self.configuration.get(HARVEST_NAMESPACE, {}).get(HARVEST_ENABLED_KEY) is True


_REVISIONS = itertools.count(1)


def revised(group: Group) -> Group:
    """``group`` with a fresh :attr:`Group.revision`."""
    return replace(group, revision=next(_REVISIONS))


@dataclass(frozen=True, slots=True)
class Sim:
    """One SIM with its one subscription (IMSI); the emulator has no multi-IMSI SIMs."""

    imsi: str
    sim_id: str
    iccid: str
    msisdn: str
    operator_id: str
    status: SimStatus
    group_id: str | None
    tags: Mapping[str, str]
    #: The IP address of the SIM's data session (spec B2); ``None`` means no session.
    session_address: str | None
    created_ms: int
    modified_ms: int
    speed_class: str = "s1.standard"
    #: Barred by the subscriber: no use until unbarred (logging-service-terms 11.7).
    barred: bool = False
    #: Termination protection off: only then may the SIM be terminated (SORACOM's API).
    termination_enabled: bool = False

    def __post_init__(self) -> None:
        if not is_imsi(self.imsi):
            raise ValueError(f"IMSI {self.imsi!r} must be 6 to 15 digits")
        if (
            self.session_address is not None
            and normalise_address(self.session_address) != self.session_address
        ):
            raise ValueError(f"session address {self.session_address!r} is not canonical")

    @property
    def has_session(self) -> bool:
        """Whether the network gives the SIM a data session now: it has an address, a status
        that allows data, and is not barred (spec B12)."""
        return self.session_address is not None and self.status.allows_data and not self.barred

    def with_changes(self, **changes: Any) -> Sim:
        return replace(self, **changes)


# Not frozen: one is made per device write, and a frozen dataclass costs several times as much
# to build (tests/bench/ingest_stages.py); nothing changes one once made.
@dataclass(slots=True)
class DataEntry:
    """One Harvest Data entry, keyed by (operator, resource, time in ms) (spec A1)."""

    operator_id: str
    resource_type: ResourceType
    resource_id: str
    time: int
    content_type: str
    content: str
    category: str | None = None
    #: The content's top-level keys when whoever built the entry already knows them (the
    #: ingest parsed the JSON anyway), so the writer need not parse it again.
    attributes: tuple[str, ...] | None = field(default=None, compare=False)

    def attribute_names(self) -> tuple[str, ...]:
        """Top-level keys of a JSON object content (``DataResourceMetadata.attributeNames``)."""
        if self.attributes is not None:
            return self.attributes
        return content_keys(self.content_type, self.content)


def content_keys(content_type: str, content: str) -> tuple[str, ...]:
    """Top-level keys of a stored content that is a JSON object; ``()`` for anything else,
    including JSON stored as sent that does not parse (setting ``invalid_json``), however it
    fails: too deep a nesting raises ``RecursionError``, not ``ValueError``."""
    if content_type != "application/json":
        return ()
    try:
        parsed = json.loads(content)
    except (ValueError, RecursionError):
        return ()
    return json_keys(parsed)


def json_keys(parsed: object) -> tuple[str, ...]:
    """The top-level keys of a parsed JSON value: an object's, in order; ``()`` otherwise."""
    if isinstance(parsed, dict):
        return tuple(str(key) for key in parsed)
    return ()


@dataclass(frozen=True, slots=True)
class ResourceMetadata:
    operator_id: str
    resource_type: ResourceType
    resource_id: str
    last_modified_ms: int
    attribute_names: tuple[str, ...] = field(default=())


# Not frozen: one is made per device write, and a frozen dataclass costs five times as much to
# build (0.6 against 0.12 us, tests/bench/ingest_stages.py). Nothing changes one once made.
@dataclass(slots=True)
class Upload:
    """One device write as a transport hands it to the ingest service.

    ``content_type`` is ``None`` for raw TCP/UDP bytes, which are always binary (spec A1).
    """

    transport: Transport
    peer: str
    body: bytes
    content_type: str | None = None
    timestamp_ms: int | None = None
    #: An identity the transport verified itself (a Beam-signed IMSI); else the peer decides.
    imsi: str | None = None
    #: What the request log names as the request's target: the path for HTTP, the listener
    #: for TCP and UDP.
    target: str = ""
    #: The bytes the device sent, when the transport knows more than ``body`` holds (an HTTP
    #: body read only up to the size limit); ``None``: ``len(body)``.
    size: int | None = None
