"""Harvest Data group options: custom timestamp, batch write and category (pure, no I/O).

A group's ``SoracomHarvest`` namespace may carry, besides ``enabled``, the keys below.
:func:`options_from_config` validates them into a :class:`HarvestOptions`, and
:func:`apply_options` turns one device payload into the ``(time in ms, content)`` of each entry
to store. Every refusal is an :class:`OptionError` whose message says what is wrong; the caller
answers it with a 400 to the device and a line in the error log (notes
binary-parser-timestamps-beam-unified.md section 2.4).

Configuration keys (namespace ``SoracomHarvest``):

======================  =====================================================================
key                     value
======================  =====================================================================
``customTimestamp``     ``{"type": "jsonpointer", "value": "/time", "format": "iso-8601"}``:
                        SORACOM's own key and shape (spec A1; OpenAPI
                        ``putConfigurationParameters`` example 7). ``null`` or absent = off.
``batchWrite``          ``{"enabled": true, "pointer": "/data"}``: **the emulator's choice**;
                        SORACOM's key name is not published. ``pointer`` is an RFC 6901
                        pointer to the array, ``""`` (the default) = the whole body is the
                        array (notes 2.3).
``category``            ``"<name>"``: **the emulator's choice** of key; stored on every entry
                        as ``DataEntry.category``. ``null``, ``""`` or absent = no category.
``onMissingTimestamp``  ``"reject"`` (default) or ``"receiveTime"``: **an emulator switch**;
                        SORACOM does not document what happens (notes 2.2).
======================  =====================================================================

Timestamp formats (``customTimestamp.format``): ``iso-8601`` is SORACOM's documented value.
The two UNIX formats exist in SORACOM's console but their API strings are unknown (notes 2.1),
so the emulator's canonical names are ``unixtime-seconds`` and ``unixtime-milliseconds`` and a
few spellings are accepted as aliases (see :data:`FORMAT_ALIASES`). This is a guess:
:attr:`TimestampRule.alias` keeps the configured spelling whenever it was not the canonical
one, so the caller can log which alias matched.

Decisions where SORACOM is silent:

* **Precedence.** With ``customTimestamp`` on, the payload's timestamp wins over
  ``X-Soracom-Timestamp``: the group owner opted in. The header still applies when the option
  is off, and as the fallback of ``onMissingTimestamp: "receiveTime"``.
* **Missing timestamp.** ``"reject"``: a payload that is not JSON, lacks a value at the
  pointer, or holds one that does not parse in the configured format is refused.
  ``"receiveTime"``: the entry is stored as if the option were off (the header's time if
  sent, else the receive time). The switch governs single writes only: a batch element always
  needs its own timestamp (notes 2.3, "all data in the array must include a timestamp").
* **Batch write** forces the custom timestamp on (notes 2.3), so ``batchWrite`` enabled
  without ``customTimestamp`` is a configuration error. A batch is all or nothing: a body
  without the array, an empty array, more than :data:`MAX_BATCH_ELEMENTS` elements, or any
  element without a valid timestamp refuses the whole send. Each element becomes one entry
  whose content is the element re-serialised compactly, its timestamp property included;
  entries come back in array order, so of two elements at the same millisecond the later one
  overwrites the earlier (spec A1). Batch times ignore ``X-Soracom-Timestamp``.
* **ISO 8601** is read in its extended format: ``YYYY-MM-DDThh:mm:ss``, optional fraction
  (``.`` or ``,``, any number of digits, truncated to the millisecond) and a required zone
  designator, ``Z`` or ``+hh:mm`` (also ``+hhmm``, ``+hh``). A time without a zone is
  ambiguous and refused; so are leap seconds and times outside 1970..9999 UTC.
* **UNIX times** must be JSON numbers (integer or fraction, not strings); fractions of a
  millisecond are truncated toward the past.
* Unknown keys inside ``customTimestamp`` and ``batchWrite``, and keys that differ from ours
  only in case (``batchwrite``), are configuration errors; other top-level keys belong to
  SORACOM and are ignored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final

NAMESPACE: Final = "SoracomHarvest"
CUSTOM_TIMESTAMP_KEY: Final = "customTimestamp"
BATCH_WRITE_KEY: Final = "batchWrite"
CATEGORY_KEY: Final = "category"
ON_MISSING_TIMESTAMP_KEY: Final = "onMissingTimestamp"
_OPTION_KEYS: Final = (
    CUSTOM_TIMESTAMP_KEY,
    BATCH_WRITE_KEY,
    CATEGORY_KEY,
    ON_MISSING_TIMESTAMP_KEY,
)

#: ``customTimestamp.type``: the only type SORACOM offers (notes 2.1).
POINTER_TYPE: Final = "jsonpointer"

ISO_8601: Final = "iso-8601"
UNIX_SECONDS: Final = "unixtime-seconds"
UNIX_MILLISECONDS: Final = "unixtime-milliseconds"
FORMATS: Final = (ISO_8601, UNIX_SECONDS, UNIX_MILLISECONDS)

#: Accepted spellings of each format, compared after lower-casing and dropping everything but
#: letters and digits (so "UNIX time (seconds)", "unix_time_seconds" and "unixtime-seconds"
#: are one). A bare "unix", "unixtime" or "epoch" means seconds, the usual sense of UNIX time.
FORMAT_ALIASES: Final[Mapping[str, str]] = {
    **dict.fromkeys(("iso8601", "rfc3339"), ISO_8601),
    **dict.fromkeys(
        (
            "unixtimeseconds",
            "unixtimesec",
            "unixtimes",
            "unixseconds",
            "unixsec",
            "unixtime",
            "unix",
            "epoch",
            "epochseconds",
            "seconds",
        ),
        UNIX_SECONDS,
    ),
    **dict.fromkeys(
        (
            "unixtimemilliseconds",
            "unixtimemillis",
            "unixtimemsec",
            "unixtimems",
            "unixmilliseconds",
            "unixmillis",
            "unixms",
            "epochmilliseconds",
            "epochmillis",
            "epochms",
            "milliseconds",
            "millis",
            "ms",
        ),
        UNIX_MILLISECONDS,
    ),
}

REJECT: Final = "reject"
RECEIVE_TIME: Final = "receiveTime"
MISSING_TIMESTAMP_POLICIES: Final = (REJECT, RECEIVE_TIME)

#: Elements per batch write (spec A2; notes 2.3, source H3).
MAX_BATCH_ELEMENTS: Final = 100

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
#: 9999-12-31T23:59:59.999Z, the last instant a ``datetime`` holds.
MAX_TIME_MS: Final = 253_402_300_799_999

_ISO_8601: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)",
    re.ASCII,
)
_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*", re.ASCII)


class OptionError(ValueError):
    """The payload or the group's ``SoracomHarvest`` configuration cannot be applied.

    The message says precisely what is wrong; it is meant for the device's 400 and the error log.
    """


# --- JSON Pointer (RFC 6901) ---


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 pointer, unescaped (``~1`` is ``/``, ``~0`` is ``~``).

    ``""`` is the whole document (no tokens). Raises :class:`OptionError` for a pointer that
    does not start with ``/`` or holds a ``~`` not followed by ``0`` or ``1`` (RFC 6901 section 3).
    """
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise OptionError(f"JSON Pointer {pointer!r} must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise OptionError(
                f"JSON Pointer {pointer!r} has a '~' that is not '~0' or '~1' (RFC 6901 section 3)"
            )
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


def escape_token(token: str) -> str:
    """One reference token escaped for a pointer (``~`` as ``~0``, ``/`` as ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value ``pointer`` refers to in a parsed JSON ``document`` (RFC 6901 section 4).

    Raises :class:`LookupError` saying where and why the lookup stopped when nothing is there,
    and :class:`OptionError` for a malformed pointer.
    """
    value = document
    path = ""
    for token in parse_pointer(pointer):
        if isinstance(value, dict):
            if token not in value:
                raise LookupError(f"the object at {path or 'the top'} has no member {token!r}")
            value = value[token]
        elif isinstance(value, list):
            if token == "-":
                raise LookupError(
                    f"'-' at {path or 'the top'} names the element after the last one"
                )
            if not _ARRAY_INDEX.fullmatch(token):
                raise LookupError(f"{token!r} is not an index of the array at {path or 'the top'}")
            if int(token) >= len(value):
                raise LookupError(
                    f"index {token} is past the end of the {len(value)}-element array"
                    f" at {path or 'the top'}"
                )
            value = value[int(token)]
        else:
            raise LookupError(
                f"the value at {path or 'the top'} is {_json_kind(value)}, not an object or array"
            )
        path += "/" + escape_token(token)
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --- timestamps ---


def iso_8601_to_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 date and time with a zone designator.

    Fractions finer than a millisecond are truncated. Raises :class:`ValueError` whose message
    completes "the timestamp ...".
    """
    match = _ISO_8601.fullmatch(text)
    if match is None:
        raise ValueError(
            "is not an ISO 8601 date and time with a zone"
            f" (YYYY-MM-DDThh:mm:ss[.fff] then Z or +hh:mm): {text!r}"
        )
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu:
        zone = UTC
    else:
        if int(off_h) > 23 or int(off_m or 0) > 59:
            raise ValueError(f"has an impossible UTC offset: {text!r}")
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        zone = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "").ljust(6, "0")[:6])
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone
        )
    except ValueError as error:
        raise ValueError(f"is not a valid date and time ({error}): {text!r}") from None
    return (moment - _EPOCH) // _ONE_MS


def timestamp_to_ms(value: Any, format: str) -> int:
    """Milliseconds since the epoch of a JSON ``value`` read in one of :data:`FORMATS`.

    Raises :class:`ValueError` saying why the value does not fit the format or the range
    1970..9999 UTC, in words that complete "the timestamp ...".
    """
    if format == ISO_8601:
        if not isinstance(value, str):
            raise ValueError(f"is {_json_kind(value)}, but {ISO_8601} needs a string")
        ms = iso_8601_to_ms(value)
    elif format in (UNIX_SECONDS, UNIX_MILLISECONDS):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"is {_json_kind(value)}, but {format} needs a JSON number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"is not a finite number: {value!r}")
        # repr() is the shortest text that reads back as the same float, so 1742169600.123
        # seconds is 1742169600123 ms, not one less through binary rounding.
        exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
        if format == UNIX_SECONDS:
            exact *= 1000
        ms = int(exact.to_integral_value(rounding=ROUND_FLOOR))
    else:
        raise ValueError(f"has an unknown format {format!r}")
    if not 0 <= ms <= MAX_TIME_MS:
        raise ValueError(f"is out of range (before 1970 or after 9999 UTC): {value!r}")
    return ms


# --- the rules ---


@dataclass(frozen=True, slots=True)
class TimestampRule:
    """Take each entry's time from the value at ``pointer``, read in ``format``."""

    pointer: str
    format: str
    #: The configured spelling when it was an alias of ``format`` rather than the canonical
    #: name (a guess the caller may log); ``None`` when it was canonical.
    alias: str | None = None

    def __post_init__(self) -> None:
        if not self.pointer.startswith("/"):
            raise OptionError(
                f"the timestamp pointer {self.pointer!r} must start with '/'"
                " (it names a property of the JSON payload)"
            )
        parse_pointer(self.pointer)
        if self.format not in FORMATS:
            raise OptionError(
                f"unknown timestamp format {self.format!r}; expected one of {', '.join(FORMATS)}"
            )

    def time_of(self, document: Any) -> int:
        """The time in ms this rule reads from a parsed JSON document.

        Raises :class:`ValueError` saying why there is no valid timestamp at the pointer.
        """
        try:
            value = resolve_pointer(document, self.pointer)
        except LookupError as error:
            raise ValueError(f"no timestamp at {self.pointer}: {error}") from None
        try:
            return timestamp_to_ms(value, self.format)
        except ValueError as error:
            raise ValueError(f"the timestamp at {self.pointer} {error}") from None


@dataclass(frozen=True, slots=True)
class BatchRule:
    """Store each element of the array at ``pointer`` (``""`` = the whole body) as one entry."""

    pointer: str

    def __post_init__(self) -> None:
        parse_pointer(self.pointer)


@dataclass(frozen=True, slots=True)
class HarvestOptions:
    """A group's Harvest Data options, validated. The default is no option at all."""

    custom_timestamp: TimestampRule | None = None
    batch: BatchRule | None = None
    #: ``DataEntry.category`` of every entry stored; the caller sets it.
    category: str | None = None
    on_missing_timestamp: str = REJECT

    def __post_init__(self) -> None:
        if self.on_missing_timestamp not in MISSING_TIMESTAMP_POLICIES:
            raise OptionError(
                f"unknown missing-timestamp policy {self.on_missing_timestamp!r};"
                f" expected one of {', '.join(MISSING_TIMESTAMP_POLICIES)}"
            )
        if self.batch is not None and self.custom_timestamp is None:
            raise OptionError(
                "batch write needs the custom timestamp: each element carries its own time"
                " (notes 2.3)"
            )
        if self.category == "":
            raise OptionError("the category must not be empty")


NO_OPTIONS: Final = HarvestOptions()


# --- configuration ---


def _where(*keys: str) -> str:
    return "group configuration " + ".".join((NAMESPACE, *keys))


def _check_keys(
    value: Mapping[str, Any], key: str, required: frozenset[str], optional: frozenset[str]
) -> None:
    unknown = sorted(str(k) for k in value if k not in required | optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise OptionError(f"{_where(key)} has unknown keys {unknown}; allowed: {allowed}")
    missing = sorted(required - set(value))
    if missing:
        raise OptionError(f"{_where(key)} lacks the keys {missing}")


def _timestamp_rule(value: Any) -> TimestampRule:
    key = CUSTOM_TIMESTAMP_KEY
    if not isinstance(value, Mapping):
        raise OptionError(
            f"{_where(key)} must be an object like"
            ' {"type": "jsonpointer", "value": "/time", "format": "iso-8601"},'
            f" not {_json_kind(value)}"
        )
    _check_keys(value, key, frozenset({"type", "value", "format"}), frozenset())
    if value["type"] != POINTER_TYPE:
        raise OptionError(
            f"{_where(key, 'type')} must be {POINTER_TYPE!r} (the only type), not {value['type']!r}"
        )
    pointer = value["value"]
    if not isinstance(pointer, str):
        raise OptionError(f"{_where(key, 'value')} must be a JSON Pointer string")
    configured = value["format"]
    if not isinstance(configured, str):
        raise OptionError(f"{_where(key, 'format')} must be a string, one of {', '.join(FORMATS)}")
    canonical = FORMAT_ALIASES.get("".join(c for c in configured.lower() if c.isalnum()))
    if canonical is None:
        raise OptionError(
            f"{_where(key, 'format')} {configured!r} is not a known timestamp format;"
            f" expected one of {', '.join(FORMATS)}"
        )
    try:
        return TimestampRule(pointer, canonical, None if configured == canonical else configured)
    except OptionError as error:
        raise OptionError(f"{_where(key)}: {error}") from None


def _batch_rule(value: Any) -> BatchRule | None:
    key = BATCH_WRITE_KEY
    if not isinstance(value, Mapping):
        raise OptionError(
            f'{_where(key)} must be an object like {{"enabled": true, "pointer": "/data"}},'
            f" not {_json_kind(value)}"
        )
    _check_keys(value, key, frozenset({"enabled"}), frozenset({"pointer"}))
    enabled = value["enabled"]
    if not isinstance(enabled, bool):
        raise OptionError(f"{_where(key, 'enabled')} must be true or false, not {enabled!r}")
    pointer = value.get("pointer", "")
    if pointer is None:
        pointer = ""
    if not isinstance(pointer, str):
        raise OptionError(
            f"{_where(key, 'pointer')} must be a JSON Pointer string ('' = the whole body)"
        )
    try:
        rule = BatchRule(pointer)
    except OptionError as error:
        raise OptionError(f"{_where(key, 'pointer')}: {error}") from None
    return rule if enabled else None


def options_from_config(config: Mapping[str, Any]) -> HarvestOptions:
    """Validate a group's ``SoracomHarvest`` namespace into :class:`HarvestOptions`.

    See the module docstring for the keys. Raises :class:`OptionError` naming the key at fault.
    """
    for key in config:
        for option in _OPTION_KEYS:
            if isinstance(key, str) and key != option and key.lower() == option.lower():
                raise OptionError(f"{_where(key)} is misspelt: the key is {option!r}")

    timestamp = config.get(CUSTOM_TIMESTAMP_KEY)
    custom_timestamp = None if timestamp is None else _timestamp_rule(timestamp)

    batch_config = config.get(BATCH_WRITE_KEY)
    batch = None if batch_config is None else _batch_rule(batch_config)
    if batch is not None and custom_timestamp is None:
        raise OptionError(
            f"{_where(BATCH_WRITE_KEY)} is enabled but {CUSTOM_TIMESTAMP_KEY} is not set:"
            " batch write always takes each element's time from the element (notes 2.3)"
        )

    category = config.get(CATEGORY_KEY)
    if category is not None and not isinstance(category, str):
        raise OptionError(f"{_where(CATEGORY_KEY)} must be a string, not {_json_kind(category)}")

    policy = config.get(ON_MISSING_TIMESTAMP_KEY)
    if policy is None:
        policy = REJECT
    if policy not in MISSING_TIMESTAMP_POLICIES:
        raise OptionError(
            f"{_where(ON_MISSING_TIMESTAMP_KEY)} must be one of"
            f" {', '.join(repr(p) for p in MISSING_TIMESTAMP_POLICIES)}, not {policy!r}"
        )
    return HarvestOptions(custom_timestamp, batch, category or None, policy)


# --- applying the options to one payload ---


def _is_json(content_type: str) -> bool:
    mime = content_type.partition(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _parse_json(content_type: str, content: str) -> Any:
    """The parsed payload; raises :class:`ValueError` when it is not JSON."""
    if not _is_json(content_type):
        raise ValueError(f"the payload is not JSON (content type {content_type!r})")
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"the payload is not valid JSON: {error}") from None


def _compact(element: Any) -> str:
    return json.dumps(element, separators=(",", ":"), ensure_ascii=False)


def apply_options(
    options: HarvestOptions,
    content_type: str,
    content: str,
    receive_ms: int,
    header_timestamp_ms: int | None,
) -> list[tuple[int, str]]:
    """The ``(time in ms, content)`` of each entry one payload becomes, in storage order.

    ``content_type`` and ``content`` are as they will be stored; ``header_timestamp_ms`` is
    ``X-Soracom-Timestamp`` when it applies (direct HTTP only, spec A1). Raises
    :class:`OptionError` when the payload cannot be stored under these options; nothing of a
    refused batch is to be stored.
    """
    default_ms = receive_ms if header_timestamp_ms is None else header_timestamp_ms
    rule = options.custom_timestamp
    if rule is None:
        return [(default_ms, content)]
    if options.batch is None:
        try:
            return [(rule.time_of(_parse_json(content_type, content)), content)]
        except ValueError as error:
            if options.on_missing_timestamp == RECEIVE_TIME:
                return [(default_ms, content)]
            raise OptionError(f"custom timestamp: {error}") from None
    return _apply_batch(rule, options.batch, content_type, content)


def _apply_batch(
    rule: TimestampRule, batch: BatchRule, content_type: str, content: str
) -> list[tuple[int, str]]:
    try:
        document = _parse_json(content_type, content)
    except ValueError as error:
        raise OptionError(f"batch write: {error}") from None
    where = batch.pointer or "the top"
    try:
        elements = resolve_pointer(document, batch.pointer)
    except LookupError as error:
        raise OptionError(f"batch write: no array at {where}: {error}") from None
    if not isinstance(elements, list):
        raise OptionError(
            f"batch write: the value at {where} is {_json_kind(elements)}, not an array"
        )
    if not elements:
        raise OptionError(f"batch write: the array at {where} is empty")
    if len(elements) > MAX_BATCH_ELEMENTS:
        raise OptionError(
            f"batch write: the array at {where} has {len(elements)} elements;"
            f" at most {MAX_BATCH_ELEMENTS} per send"
        )
    entries = []
    for index, element in enumerate(elements):
        try:
            entries.append((rule.time_of(element), _compact(element)))
        except ValueError as error:
            raise OptionError(f"batch write: element {index}: {error}") from None
    return entries
