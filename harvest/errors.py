"""One error base class and the catalogue of every error the emulator answers with.

Every refusal, on every transport, is a :class:`HarvestError` built from one :class:`ErrorSpec`
of the catalogue below. The HTTP transport renders it as SORACOM's error body
``{"code": ..., "message": ...}`` (spec A4, notes real-service.md section 7); the raw TCP/UDP
transports answer the bare status code (spec B4). SORACOM publishes only a few of its codes
(``AUM0001``, ``AUM0002``); every other code uses the emulator's own prefix ``HEM`` (spec B11).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One catalogue line: a stable code, the HTTP status and a default message."""

    code: str
    status: int
    message: str
    #: Who meets it: "api" (management API), "device" (device writes) or "control".
    side: str

    def __post_init__(self) -> None:
        if len(self.code) != 7 or not self.code[:3].isalpha() or not self.code[3:].isdigit():
            raise ValueError(f"error code {self.code!r} is not of the form XXX0000")
        if not 400 <= self.status <= 599:
            raise ValueError(f"error status {self.status} is not a 4xx or 5xx")
        if self.side not in ("api", "device", "control"):
            raise ValueError(f"unknown side {self.side!r}")


class HarvestError(Exception):
    """A refusal with a status, a code, a message and the response headers that go with it
    (``Allow`` on a 405, the ``X-Soracom-Ratelimit-*`` headers on every ``/v1`` answer),
    raised anywhere below the transports. The HTTP transport sends the headers; the raw
    transports have none to send."""

    def __init__(
        self,
        spec: ErrorSpec,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.message = message or spec.message
        #: Only an injected fault answers another status than its catalogue line's.
        self._status = spec.status if status is None else status
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(f"{spec.code} {self.message}")

    def with_headers(self, headers: Mapping[str, str]) -> HarvestError:
        """This error, with ``headers`` added to its response headers."""
        self.headers.update(headers)
        return self

    @property
    def status(self) -> int:
        return self._status

    @property
    def code(self) -> str:
        return self.spec.code

    def body(self) -> dict[str, str]:
        """SORACOM's ``APICallErrorMessage`` shape."""
        return {"code": self.spec.code, "message": self.message}


class Dropped(Exception):
    """The request gets no answer at all: the transport hangs up (TCP, HTTP) or stays silent
    (UDP). Raised for a ``drop`` fault, and for a SIM the network gives no data session.

    ``reason``, when set, is why (it goes to the logs and metrics, never to the peer).
    """

    def __init__(self, reason: HarvestError | None = None) -> None:
        self.reason = reason
        super().__init__("dropped" if reason is None else f"dropped: {reason}")

    @property
    def code(self) -> str:
        """The reason's error code, or ``dropped`` (a drop fault), for logs and metrics."""
        return "dropped" if self.reason is None else self.reason.code


# --- management API: authentication (real SORACOM codes, notes real-service.md section 7) ---
TOKEN_REQUIRED: Final = ErrorSpec("AUM0001", 401, "Token is required in the request header", "api")
INVALID_CREDENTIALS: Final = ErrorSpec("AUM0002", 401, "Invalid username/password supplied.", "api")

# --- management API: emulator-defined codes (spec B11) ---
INVALID_PARAMETER: Final = ErrorSpec("HEM1001", 400, "Invalid request parameter.", "api")
INVALID_BODY: Final = ErrorSpec("HEM1002", 400, "Invalid request body.", "api")
INVALID_OPERATOR_ID: Final = ErrorSpec("HEM1003", 400, "Invalid Operator Id", "api")
CONFLICT: Final = ErrorSpec("HEM1004", 409, "The resource already exists.", "api")
NAMESPACE_NOT_SET: Final = ErrorSpec(
    "HEM1005", 400, "The group has no configuration in that namespace.", "api"
)
INVALID_TRANSITION: Final = ErrorSpec(
    "HEM1006", 400, "The SIM cannot change to that status.", "api"
)
NOT_FOUND: Final = ErrorSpec("HEM2001", 404, "No such resource.", "api")
NO_SUCH_ENTRY: Final = ErrorSpec("HEM2002", 404, "No such entry.", "api")
NO_SUCH_API: Final = ErrorSpec("HEM2003", 404, "No such API.", "api")
METHOD_NOT_ALLOWED: Final = ErrorSpec("HEM2004", 405, "Method not allowed.", "api")
API_RATE_LIMITED: Final = ErrorSpec("HEM1007", 429, "Too many API calls this minute.", "api")
INTERNAL: Final = ErrorSpec("HEM5001", 500, "Internal error.", "api")

# --- device side (spec A1, B2, B4, B6) ---
HARVEST_DISABLED: Final = ErrorSpec(
    "HEM4001", 400, "Harvest Data is not enabled for the SIM's group.", "device"
)
NO_GROUP: Final = ErrorSpec("HEM4002", 400, "The SIM does not belong to a group.", "device")
NO_SESSION: Final = ErrorSpec("HEM4003", 403, "No SIM has a session at this address.", "device")
PAYLOAD_TOO_LARGE: Final = ErrorSpec("HEM4004", 413, "The payload is too large.", "device")
INVALID_TIMESTAMP: Final = ErrorSpec(
    "HEM4005", 400, "X-Soracom-Timestamp must be a UNIX time in milliseconds.", "device"
)
INVALID_JSON: Final = ErrorSpec(
    "HEM4006", 400, "The body is not valid JSON but was sent as application/json.", "device"
)
SIM_NOT_USABLE: Final = ErrorSpec(
    "HEM4007", 403, "The SIM's status does not allow data communication.", "device"
)
SIM_BARRED: Final = ErrorSpec("HEM4009", 403, "The SIM is barred by its subscriber.", "device")
OPTION_REJECTED: Final = ErrorSpec(
    "HEM4010", 400, "The payload does not satisfy the group's Harvest options.", "device"
)
BEAM_SIGNATURE_INVALID: Final = ErrorSpec(
    "HEM4011", 403, "The SORACOM Beam signature does not verify.", "device"
)
RATE_LIMITED: Final = ErrorSpec("HEM4012", 429, "The SIM is over its write rate ceiling.", "device")
QUOTA_EXCEEDED: Final = ErrorSpec(
    "HEM4013", 429, "The SIM has used its daily write bundle (policy reject).", "device"
)
BALANCE_EXCEEDED: Final = ErrorSpec(
    "HEM4014", 403, "The month's charges have passed the balance ceiling.", "device"
)
DEVICE_METHOD_NOT_ALLOWED: Final = ErrorSpec("HEM4008", 405, "Devices write with POST.", "device")

# --- Harvest Files (notes real-service.md section 5; docs/files.md) ---
FILES_DISABLED: Final = ErrorSpec(
    "HEM4015", 400, "Harvest Files is not enabled for the SIM's group.", "device"
)
FILES_DEFAULT_PATH: Final = ErrorSpec(
    "HEM4016", 404, "The group's Harvest Files default path does not start with /.", "device"
)
DEVICE_NO_SUCH_FILE: Final = ErrorSpec("HEM4017", 404, "No such file.", "device")
RANGE_NOT_SATISFIABLE: Final = ErrorSpec(
    "HEM4018", 416, "The range asks for no byte of the file.", "device"
)
INVALID_FILE_PATH: Final = ErrorSpec("HEM1008", 400, "Invalid file path.", "api")
DIRECTORY_NOT_EMPTY: Final = ErrorSpec("HEM1009", 400, "The directory is not empty.", "api")
READ_ONLY_SCOPE: Final = ErrorSpec("HEM1010", 400, "The public scope is read-only.", "api")
FILE_TOO_LARGE: Final = ErrorSpec("HEM1011", 413, "The file is too large.", "api")
NO_SUCH_FILE: Final = ErrorSpec("HEM2005", 404, "No such file.", "api")
NO_SUCH_DIRECTORY: Final = ErrorSpec("HEM2006", 404, "No such directory.", "api")
NO_SUCH_SCOPE: Final = ErrorSpec("HEM2007", 404, "The specified scope does not exist.", "api")
NO_SUCH_EXPORT: Final = ErrorSpec("HEM2008", 404, "No such exported file.", "api")
DOWNLOAD_URL_INVALID: Final = ErrorSpec(
    "HEM2009", 403, "The download URL is expired or its signature does not verify.", "api"
)

# --- emulator control plane ---
CONTROL_TOKEN_REQUIRED: Final = ErrorSpec(
    "HEM9001", 401, "The control plane needs the X-Emulator-Token header.", "control"
)
FAULT_INJECTED: Final = ErrorSpec(
    "HEM9004", 500, "A fault rule answered this request (status as the rule says).", "control"
)
MAINTENANCE: Final = ErrorSpec(
    "HEM9005", 503, "The service is under maintenance (logging-service-terms 5.2).", "control"
)
CONTROL_DISABLED: Final = ErrorSpec(
    "HEM9002", 404, "The emulator control plane is disabled.", "control"
)
CONSOLE_BUSY: Final = ErrorSpec(
    "HEM9010", 503, "Every live-update stream of the web console is taken.", "control"
)

CATALOGUE: Final[tuple[ErrorSpec, ...]] = tuple(
    value for value in tuple(globals().values()) if isinstance(value, ErrorSpec)
)
