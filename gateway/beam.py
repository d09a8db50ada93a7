"""Requests forwarded by SORACOM Beam: the added headers, the signature, the wrapped body (spec §3).

Pure functions over header mappings, TCP first lines and bodies; no I/O and no framework, so
the HTTP and TCP adapters share them and the tests need no event loop.

Beam's signature (version ``20151001``, §3.2) is the lowercase hex SHA-256 of the pre-shared key
followed by ``name=value`` pairs with nothing between them. There is no HMAC, and the body is
not signed. Text is hashed as UTF-8 with ``surrogateescape``, so a header value that a parser
decoded that way is hashed as the bytes that came over the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

SIGNATURE_VERSION = "20151001"
"""The only signature version Beam still sends; ``20150901`` was removed from beam-proxy (§3.2)."""

BEAM_USER_AGENT = "SORACOM Beam"
"""The User-Agent of UDP/TCP→HTTP forwards, whose body is ``{"payload": base64}`` (§3.1)."""

SIGNATURE_HEADER = "x-soracom-signature"
SIGNATURE_VERSION_HEADER = "x-soracom-signature-version"
TIMESTAMP_HEADER = "x-soracom-timestamp"
IMEI_HEADER = "x-soracom-imei"
IMSI_HEADER = "x-soracom-imsi"
MSISDN_HEADER = "x-soracom-msisdn"
SIM_ID_HEADER = "x-soracom-sim-id"
LORA_DEVICE_ID_HEADER = "x-soracom-lora-device-id"
SIGFOX_DEVICE_ID_HEADER = "x-soracom-sigfox-device-id"

_PREFIX = "x-soracom-"

# §3.2: the cellular headers are signed in the fixed order IMEI, IMSI, MSISDN, SIM ID, which is
# also their alphabetical order; LPWA forwards sign their device ID instead. Beam never sends
# both kinds at once; if a request does, slotting the LPWA names in alphabetically keeps the
# string equal to the one SORACOM's reference verifier builds (E3 sorts), our inference (L).
_SIGNED_ID_HEADERS = (
    IMEI_HEADER,
    IMSI_HEADER,
    LORA_DEVICE_ID_HEADER,
    MSISDN_HEADER,
    SIGFOX_DEVICE_ID_HEADER,
    SIM_ID_HEADER,
)

# TCP first-line field names (§3.1): note ``simId``, not ``sim-id``.
_TCP_ID_FIELDS = ("imei", "imsi", "msisdn", "simId")
_TCP_SIGNATURE_MARK = ";signature="


class BeamSignatureError(ValueError):
    """A Beam-forwarded request failed verification; the message says which check (§3.4).

    The HTTP adapter answers it with 403, as SORACOM's reference verifier does (E3).
    """


@dataclass(frozen=True, slots=True)
class BeamIdentity:
    """Who Beam says sent a request: each ID as sent (``None`` when absent), and the
    timestamp in UNIX milliseconds (``None`` when absent or not a decimal integer).

    §3.4 step 6 picks the resource: ``imsi`` (Subscriber), else ``sim_id`` (Sim), else
    ``imei`` (unknown SIM); ``lora_device_id`` and ``sigfox_device_id`` name LPWA devices.
    """

    imsi: str | None = None
    imei: str | None = None
    msisdn: str | None = None
    sim_id: str | None = None
    lora_device_id: str | None = None
    sigfox_device_id: str | None = None
    timestamp_ms: int | None = None


# -- HTTP ----------------------------------------------------------------------------------


def http_string_to_sign(psk: str, headers: Mapping[str, str]) -> str:
    """The version-``20151001`` string to sign for an HTTP forward (§3.2, §3.4 step 3).

    ``psk``, then ``name=value`` for each ID header present, in the fixed order IMEI, IMSI,
    MSISDN, SIM ID (a LoRaWAN or Sigfox device ID takes its alphabetical place, see
    ``_SIGNED_ID_HEADERS``), then ``x-soracom-timestamp=<value>`` if present. Names are matched
    case-insensitively and written lowercase; values are kept byte-for-byte. Headers may arrive
    in any order. If a name is repeated, the first wins.
    """
    folded, _ = _fold(headers.items())
    return psk + "".join(
        f"{name}={folded[name]}"
        for name in (*_SIGNED_ID_HEADERS, TIMESTAMP_HEADER)
        if name in folded
    )


def fallback_string_to_sign(psk: str, headers: Mapping[str, str]) -> str:
    """The string SORACOM's reference verifier signs (E3, §3.2 and §3.4 step 5).

    ``psk`` followed by every ``x-soracom-*`` header except ``x-soracom-signature*``, as
    lowercase ``name=value`` pairs, sorted, joined with nothing. It equals
    :func:`http_string_to_sign` unless custom ``x-soracom-*`` or operator-id headers are
    present (§3.5 point 1).
    """
    folded, _ = _fold(headers.items())
    pairs = sorted(
        f"{name}={value}"
        for name, value in folded.items()
        if name.startswith(_PREFIX) and not name.startswith(SIGNATURE_HEADER)
    )
    return psk + "".join(pairs)


def sign_http(psk: str, headers: Mapping[str, str]) -> str:
    """The ``X-Soracom-Signature`` Beam would send: lowercase hex SHA-256 (§3.2)."""
    return _sha256_hex(http_string_to_sign(psk, headers))


def identity_headers(headers: Mapping[str, str]) -> BeamIdentity:
    """The IDs and timestamp Beam added, read case-insensitively and **not verified**.

    For use when no pre-shared key is configured (§3.4 step 1). If a name is repeated, the
    first wins, as in :func:`http_string_to_sign`.
    """
    folded, _ = _fold(headers.items())
    return BeamIdentity(
        imsi=folded.get(IMSI_HEADER),
        imei=folded.get(IMEI_HEADER),
        msisdn=folded.get(MSISDN_HEADER),
        sim_id=folded.get(SIM_ID_HEADER),
        lora_device_id=folded.get(LORA_DEVICE_ID_HEADER),
        sigfox_device_id=folded.get(SIGFOX_DEVICE_ID_HEADER),
        timestamp_ms=_parse_timestamp(folded.get(TIMESTAMP_HEADER)),
    )


def verify_http(
    psk: str,
    headers: Mapping[str, str],
    *,
    max_skew_ms: int | None = None,
    now_ms: int | None = None,
    fallback_all_headers: bool = False,
) -> BeamIdentity:
    """Verify a Beam-signed HTTP forward by recipe §3.4 and return who sent it.

    Checks, in order: ``x-soracom-signature-version`` is present and ``20151001``; no
    ``x-soracom-*`` header is repeated (a second copy could say something the signature does
    not cover); ``x-soracom-signature`` is present; one of the IMSI/IMEI/MSISDN/SIM ID (or an
    LPWA device ID) headers is present; the signature equals :func:`sign_http`, compared in
    constant time, or, with ``fallback_all_headers``, the hash of
    :func:`fallback_string_to_sign`; then, only if ``max_skew_ms`` is given, the timestamp is
    within ``max_skew_ms`` of ``now_ms`` either way (§3.4 step 8; SORACOM documents no window).

    Raises :class:`BeamSignatureError` naming the failed check. Raises :class:`ValueError` for an
    empty ``psk`` or a negative ``max_skew_ms``, and :class:`TypeError` for ``max_skew_ms``
    without ``now_ms`` (the caller owns the clock); these are the caller's mistakes, not the
    request's.
    """
    _check_arguments(psk, max_skew_ms, now_ms)
    folded, repeated = _fold(headers.items())

    version = folded.get(SIGNATURE_VERSION_HEADER)
    if version is None:
        # E3's wording (§3.4 step 2).
        raise BeamSignatureError(f"{SIGNATURE_VERSION_HEADER} header is missing")
    if version != SIGNATURE_VERSION:
        raise BeamSignatureError(
            f"unsupported signature version {version!r} (only {SIGNATURE_VERSION} is supported)"
        )
    for name in sorted(repeated):
        if name.startswith(_PREFIX):
            raise BeamSignatureError(f"{name} header is repeated")
    received = folded.get(SIGNATURE_HEADER)
    if received is None:
        raise BeamSignatureError(f"{SIGNATURE_HEADER} header is missing")
    # The Signature option needs one of these (§3.1, "Prerequisites"); LPWA uses its device ID.
    if not any(name in folded for name in _SIGNED_ID_HEADERS):
        raise BeamSignatureError(
            "no x-soracom-imsi/imei/msisdn/sim-id header "
            "(nor x-soracom-lora-device-id/sigfox-device-id)"
        )

    candidates = [http_string_to_sign(psk, folded)]
    if fallback_all_headers:
        candidates.append(fallback_string_to_sign(psk, folded))
    if not _any_signature_matches(received, candidates):
        raise BeamSignatureError("signature mismatch")

    identity = identity_headers(folded)
    _check_skew(identity.timestamp_ms, max_skew_ms, now_ms)
    return identity


# -- TCP -----------------------------------------------------------------------------------


def parse_tcp_first_line(line: bytes | str) -> tuple[dict[str, str], str]:
    """Split Beam's TCP first line into its fields and its signature (§3.1).

    The line is ``imei=… imsi=… msisdn=… simId=… timestamp=…;signature=<hex>``, optionally
    ending in ``\\n`` or ``\\r\\n``. Returns the fields under their wire names (``simId``,
    values as sent) and the signature, which is ``""`` when the line is unsigned (the
    Signature option is off). Raises :class:`BeamSignatureError` if the line is not UTF-8, or
    a field is not ``name=value`` with single spaces between fields, or a name is repeated.
    """
    fields_text, signature = _split_tcp_line(line)
    fields: dict[str, str] = {}
    for token in fields_text.split(" "):
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise BeamSignatureError(f"malformed Beam TCP first line: field {token!r}")
        if name in fields:
            raise BeamSignatureError(f"malformed Beam TCP first line: {name} is repeated")
        fields[name] = value
    return fields, signature


def tcp_string_to_sign(psk: str, line: bytes | str) -> str:
    """``psk`` followed by exactly the text before ``;signature=``, spaces included (§3.2).

    Verified against S3 (E3, whose server signs the same span).
    """
    fields_text, _ = _split_tcp_line(line)
    return psk + fields_text


def verify_tcp(
    psk: str,
    line: bytes | str,
    *,
    max_skew_ms: int | None = None,
    now_ms: int | None = None,
) -> BeamIdentity:
    """Verify Beam's signed TCP first line (§3.2, §3.4) and return who sent it.

    Checks, in order: the line parses (:func:`parse_tcp_first_line`); it carries a signature;
    it has an ``imsi``, ``imei``, ``msisdn`` or ``simId`` field; the signature equals the hash
    of :func:`tcp_string_to_sign`, compared in constant time; then, only if ``max_skew_ms`` is
    given, the ``timestamp`` field is within ``max_skew_ms`` of ``now_ms``. TCP carries no
    signature version. Errors are as for :func:`verify_http`.
    """
    _check_arguments(psk, max_skew_ms, now_ms)
    fields, received = parse_tcp_first_line(line)
    if not received:
        raise BeamSignatureError("the TCP first line has no ;signature=")
    if not any(name in fields for name in _TCP_ID_FIELDS):
        raise BeamSignatureError("no imsi/imei/msisdn/simId field in the TCP first line")
    if not _any_signature_matches(received, [tcp_string_to_sign(psk, line)]):
        raise BeamSignatureError("signature mismatch")

    identity = BeamIdentity(
        imsi=fields.get("imsi"),
        imei=fields.get("imei"),
        msisdn=fields.get("msisdn"),
        sim_id=fields.get("simId"),
        timestamp_ms=_parse_timestamp(fields.get("timestamp")),
    )
    _check_skew(identity.timestamp_ms, max_skew_ms, now_ms)
    return identity


#: What a Beam TCP first line starts with: one of its field names (§3.1).
_TCP_LINE_STARTS = tuple(f"{name}=".encode() for name in (*_TCP_ID_FIELDS, "timestamp"))
#: The longest first line read: four IDs, a timestamp and a 64-hex signature take < 200 bytes.
MAX_TCP_FIRST_LINE = 1024


@dataclass(frozen=True, slots=True)
class TcpEntry:
    """What came first on a TCP connection: ``identity`` when it was Beam's verified line
    (``None`` for a device speaking directly), ``rest`` the bytes after it (the first
    message, or part of it), ``error`` when the line did not verify."""

    identity: BeamIdentity | None
    rest: bytes
    error: BeamSignatureError | None = None


class TcpFirstLine:
    """Reads Beam's first line off a TCP stream, a chunk at a time (§3.1, §3.4).

    :meth:`feed` returns ``None`` while it needs more bytes, then one :class:`TcpEntry`: a
    stream that does not start with a Beam field name (``imsi=``, ``imei=``, ``msisdn=``,
    ``simId=``, ``timestamp=``) is a device's own, returned whole; one that does is read up to
    its end of line and verified with :func:`verify_tcp` (the line must name an IMSI, as an
    HTTP forward must carry ``X-Soracom-IMSI``). ``now_ms`` is the clock for ``max_skew_ms``.
    """

    def __init__(
        self,
        psk: str,
        *,
        max_skew_ms: int | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.psk = psk
        self.max_skew_ms = max_skew_ms
        self.now_ms = now_ms
        self._buffer = b""

    def feed(self, data: bytes) -> TcpEntry | None:
        buffer = self._buffer = self._buffer + data
        if not buffer.startswith(_TCP_LINE_STARTS):
            if any(start.startswith(buffer) for start in _TCP_LINE_STARTS):
                return None  # "ims" so far: could still be Beam's line
            return TcpEntry(None, buffer)
        line, newline, rest = buffer.partition(b"\n")
        if not newline:
            if len(buffer) > MAX_TCP_FIRST_LINE:
                error = BeamSignatureError("the Beam TCP first line has no end of line")
                return TcpEntry(None, b"", error)
            return None
        try:
            identity = verify_tcp(
                self.psk,
                line,
                max_skew_ms=self.max_skew_ms,
                now_ms=None if self.now_ms is None or self.max_skew_ms is None else self.now_ms(),
            )
        except BeamSignatureError as error:
            return TcpEntry(None, b"", error)
        if identity.imsi is None:
            return TcpEntry(None, b"", BeamSignatureError("the TCP first line names no IMSI"))
        return TcpEntry(identity, rest)


# -- Body ----------------------------------------------------------------------------------


def unwrap_payload(body: bytes, user_agent: str | None) -> bytes | None:
    """The device's raw bytes from a UDP/TCP→HTTP forward, or ``None`` (§3.4 step 7).

    Returns the decoded bytes only when ``user_agent`` is exactly ``SORACOM Beam`` and the body
    is a JSON object with exactly one key, ``payload``, whose value is a standard, padded
    base64 string. Otherwise ``None``: the caller stores the body as sent (HTTP→HTTP forwards
    and Binary Parser output are not wrapped, §3.1).
    """
    if user_agent != BEAM_USER_AGENT:
        return None
    try:
        document = json.loads(body)
    # RecursionError: deeply nested JSON is merely "not our wrapper".
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.keys() != {"payload"}:
        return None
    encoded = document["payload"]
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    # binascii.Error (bad alphabet or padding) and non-ASCII text are both ValueErrors.
    except ValueError:
        return None


# -- Helpers -------------------------------------------------------------------------------


def _fold(items: Iterable[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Headers under lowercase names, the first copy winning, and the names seen twice."""
    folded: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in items:
        key = name.lower()
        if key in folded:
            repeated.add(key)
        else:
            folded[key] = value
    return folded, repeated


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(_wire_bytes(text)).hexdigest()


def _wire_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _any_signature_matches(received: str, strings_to_sign: list[str]) -> bool:
    """Constant-time comparison (§3.4 step 4) against every candidate, without early exit."""
    got = _wire_bytes(received)
    matched = False
    for text in strings_to_sign:
        matched |= hmac.compare_digest(_sha256_hex(text).encode("ascii"), got)
    return matched


def _split_tcp_line(line: bytes | str) -> tuple[str, str]:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BeamSignatureError("Beam TCP first line is not UTF-8") from exc
    line = line.removesuffix("\n").removesuffix("\r")
    fields_text, mark, signature = line.partition(_TCP_SIGNATURE_MARK)
    return fields_text, signature if mark else ""


def _parse_timestamp(raw: str | None) -> int | None:
    # isascii: str.isdigit also accepts digits such as "²" that int() rejects.
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _check_arguments(psk: str, max_skew_ms: int | None, now_ms: int | None) -> None:
    if not psk:
        # §3.4 step 1: with no key the caller skips verification or refuses; it never signs "".
        raise ValueError("an empty pre-shared key cannot verify anything")
    if max_skew_ms is not None:
        if max_skew_ms < 0:
            raise ValueError(f"max_skew_ms must not be negative, not {max_skew_ms}")
        if now_ms is None:
            raise TypeError("max_skew_ms needs now_ms")


def _check_skew(timestamp_ms: int | None, max_skew_ms: int | None, now_ms: int | None) -> None:
    if max_skew_ms is None or now_ms is None:
        return
    if timestamp_ms is None:
        raise BeamSignatureError("timestamp is missing or not UNIX milliseconds")
    skew = abs(now_ms - timestamp_ms)
    if skew > max_skew_ms:
        raise BeamSignatureError(
            f"timestamp {timestamp_ms} is {skew} ms from now, more than {max_skew_ms} ms"
        )
