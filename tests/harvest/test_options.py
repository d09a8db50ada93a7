"""Harvest Data group options: custom timestamp, batch write, category (spec A1, A2; notes
binary-parser-timestamps-beam-unified.md section 2)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harvest.payload.options import (
    FORMAT_ALIASES,
    FORMATS,
    ISO_8601,
    MAX_BATCH_ELEMENTS,
    MAX_TIME_MS,
    NO_OPTIONS,
    RECEIVE_TIME,
    REJECT,
    UNIX_MILLISECONDS,
    UNIX_SECONDS,
    BatchRule,
    HarvestOptions,
    OptionError,
    TimestampRule,
    apply_options,
    escape_token,
    iso_8601_to_ms,
    options_from_config,
    parse_pointer,
    resolve_pointer,
    timestamp_to_ms,
)

JSON = "application/json"
RECEIVED = 1_700_000_000_000
HEADER = 1_600_000_000_000
#: SORACOM's documented customTimestamp value (OpenAPI putConfigurationParameters example 7).
SORACOM_TIMESTAMP = {"type": "jsonpointer", "value": "/time", "format": "iso-8601"}


def timestamp(pointer: str = "/time", format: str = ISO_8601, **config: Any) -> HarvestOptions:
    return options_from_config(
        {
            "customTimestamp": {"type": "jsonpointer", "value": pointer, "format": format},
            **config,
        }
    )


def batch(
    array: str = "/data", pointer: str = "/time", format: str = ISO_8601, **config: Any
) -> HarvestOptions:
    return timestamp(pointer, format, batchWrite={"enabled": True, "pointer": array}, **config)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- configuration ---


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="empty"),
        pytest.param({"enabled": True}, id="harvest-only"),
        pytest.param({"enabled": True, "someSoracomKey": [1]}, id="foreign-keys-ignored"),
        pytest.param(
            {"customTimestamp": None, "batchWrite": None, "category": None}, id="all-null"
        ),
        pytest.param({"category": ""}, id="blank-category"),
        pytest.param({"batchWrite": {"enabled": False, "pointer": "/data"}}, id="batch-off"),
    ],
)
def test_configurations_without_options(config: dict[str, Any]) -> None:
    assert options_from_config(config) == NO_OPTIONS
    assert HarvestOptions(None, None, None, REJECT) == NO_OPTIONS


def test_soracoms_documented_custom_timestamp() -> None:
    options = options_from_config({"enabled": True, "customTimestamp": SORACOM_TIMESTAMP})
    assert options == HarvestOptions(TimestampRule("/time", ISO_8601), None, None, REJECT)
    assert options.custom_timestamp is not None
    assert options.custom_timestamp.alias is None


def test_every_option_together() -> None:
    options = options_from_config(
        {
            "enabled": True,
            "customTimestamp": {"type": "jsonpointer", "value": "/t", "format": UNIX_SECONDS},
            "batchWrite": {"enabled": True, "pointer": "/data"},
            "category": "weather",
            "onMissingTimestamp": "receiveTime",
        }
    )
    assert options == HarvestOptions(
        TimestampRule("/t", UNIX_SECONDS), BatchRule("/data"), "weather", RECEIVE_TIME
    )


@pytest.mark.parametrize(
    ("batch_config", "pointer"),
    [
        pytest.param({"enabled": True}, "", id="pointer-omitted-whole-body"),
        pytest.param({"enabled": True, "pointer": ""}, "", id="pointer-blank-whole-body"),
        pytest.param({"enabled": True, "pointer": None}, "", id="pointer-null-whole-body"),
        pytest.param({"enabled": True, "pointer": "/a~1b/0"}, "/a~1b/0", id="escaped"),
    ],
)
def test_batch_pointer(batch_config: dict[str, Any], pointer: str) -> None:
    options = options_from_config(
        {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": batch_config}
    )
    assert options.batch == BatchRule(pointer)


@pytest.mark.parametrize(
    ("configured", "canonical"),
    [
        pytest.param("iso-8601", ISO_8601, id="iso-canonical"),
        pytest.param("unixtime-seconds", UNIX_SECONDS, id="seconds-canonical"),
        pytest.param("unixtime-milliseconds", UNIX_MILLISECONDS, id="ms-canonical"),
        pytest.param("ISO 8601", ISO_8601, id="iso-console-label"),
        pytest.param("UNIX time (seconds)", UNIX_SECONDS, id="seconds-console-label"),
        pytest.param("UNIX time (milliseconds)", UNIX_MILLISECONDS, id="ms-console-label"),
        pytest.param("unix_seconds", UNIX_SECONDS, id="seconds-underscore"),
        pytest.param("unixtime", UNIX_SECONDS, id="bare-unixtime-is-seconds"),
        pytest.param("epoch", UNIX_SECONDS, id="bare-epoch-is-seconds"),
        pytest.param("unixtime-ms", UNIX_MILLISECONDS, id="ms-short"),
        pytest.param("UnixMillis", UNIX_MILLISECONDS, id="ms-camel"),
        pytest.param("epoch_milliseconds", UNIX_MILLISECONDS, id="ms-epoch"),
    ],
)
def test_format_aliases(configured: str, canonical: str) -> None:
    rule = timestamp(format=configured).custom_timestamp
    assert rule is not None
    assert rule.format == canonical
    assert rule.alias == (None if configured == canonical else configured)


def test_the_alias_table_is_normalised_and_complete() -> None:
    assert set(FORMAT_ALIASES.values()) == set(FORMATS)
    for alias in FORMAT_ALIASES:
        assert alias == "".join(c for c in alias.lower() if c.isalnum()), alias
    for canonical in FORMATS:
        assert "".join(c for c in canonical if c.isalnum()) in FORMAT_ALIASES


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "format": "rfc2822"}},
            r"customTimestamp\.format 'rfc2822' is not a known timestamp format; expected one of"
            r" iso-8601, unixtime-seconds, unixtime-milliseconds",
            id="unknown-format",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "format": 8601}},
            r"customTimestamp\.format must be a string",
            id="format-not-a-string",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "type": "jsonpath"}},
            r"customTimestamp\.type must be 'jsonpointer' \(the only type\), not 'jsonpath'",
            id="wrong-type",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "value": "time"}},
            r"customTimestamp: the timestamp pointer 'time' must start with '/'",
            id="pointer-without-slash",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "value": ""}},
            r"customTimestamp: the timestamp pointer '' must start with '/'",
            id="pointer-empty",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "value": "/a~2b"}},
            r"customTimestamp: JSON Pointer '/a~2b' has a '~' that is not '~0' or '~1'",
            id="pointer-bad-escape",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "value": ["time"]}},
            r"customTimestamp\.value must be a JSON Pointer string",
            id="pointer-not-a-string",
        ),
        pytest.param(
            {"customTimestamp": {"type": "jsonpointer", "value": "/time"}},
            r"customTimestamp lacks the keys \['format'\]",
            id="missing-key",
        ),
        pytest.param(
            {"customTimestamp": {**SORACOM_TIMESTAMP, "timezone": "Asia/Tokyo"}},
            r"customTimestamp has unknown keys \['timezone'\]; allowed: format, type, value",
            id="unknown-key",
        ),
        pytest.param(
            {"customTimestamp": "/time"},
            r"customTimestamp must be an object like .*, not a string",
            id="timestamp-not-an-object",
        ),
        pytest.param(
            {"batchWrite": {"enabled": True, "pointer": "/data"}},
            r"batchWrite is enabled but customTimestamp is not set",
            id="batch-without-timestamp",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": {"enabled": "yes"}},
            r"batchWrite\.enabled must be true or false, not 'yes'",
            id="batch-enabled-not-boolean",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": {"pointer": "/data"}},
            r"batchWrite lacks the keys \['enabled'\]",
            id="batch-enabled-missing",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": {"enabled": True, "path": "/d"}},
            r"batchWrite has unknown keys \['path'\]; allowed: enabled, pointer",
            id="batch-unknown-key",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": {"enabled": True, "pointer": "d"}},
            r"batchWrite\.pointer: JSON Pointer 'd' must be empty or start with '/'",
            id="batch-pointer-without-slash",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": {"enabled": True, "pointer": 1}},
            r"batchWrite\.pointer must be a JSON Pointer string",
            id="batch-pointer-not-a-string",
        ),
        pytest.param(
            {"customTimestamp": SORACOM_TIMESTAMP, "batchWrite": True},
            r"batchWrite must be an object like .*, not a boolean",
            id="batch-not-an-object",
        ),
        pytest.param(
            {"category": 3}, r"category must be a string, not a number", id="category-number"
        ),
        pytest.param(
            {"onMissingTimestamp": "drop"},
            r"onMissingTimestamp must be one of 'reject', 'receiveTime', not 'drop'",
            id="unknown-missing-policy",
        ),
        pytest.param(
            {"batchwrite": {"enabled": True}},
            r"SoracomHarvest\.batchwrite is misspelt: the key is 'batchWrite'",
            id="misspelt-key",
        ),
    ],
)
def test_bad_configurations(config: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=r"^group configuration SoracomHarvest\.") as caught:
        options_from_config(config)
    assert caught.match(message)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: TimestampRule("time", ISO_8601), "must start with '/'", id="rule-pointer"
        ),
        pytest.param(
            lambda: TimestampRule("/t", "unix"), "unknown timestamp format 'unix'", id="rule-alias"
        ),
        pytest.param(lambda: BatchRule("data"), "must be empty or start", id="batch-pointer"),
        pytest.param(
            lambda: HarvestOptions(None, BatchRule("")),
            "batch write needs the custom timestamp",
            id="batch-alone",
        ),
        pytest.param(
            lambda: HarvestOptions(on_missing_timestamp="ignore"),
            "unknown missing-timestamp policy 'ignore'",
            id="policy",
        ),
        pytest.param(lambda: HarvestOptions(category=""), "must not be empty", id="category"),
    ],
)
def test_rules_validate_themselves(build: Callable[[], object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        build()


def test_rules_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_OPTIONS.category = "x"  # type: ignore[misc]


# --- JSON Pointer (RFC 6901) ---

#: RFC 6901 section 5.
RFC_DOCUMENT: dict[str, Any] = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        pytest.param("", RFC_DOCUMENT, id="whole-document"),
        pytest.param("/foo", ["bar", "baz"], id="member"),
        pytest.param("/foo/0", "bar", id="index"),
        pytest.param("/", 0, id="empty-key"),
        pytest.param("/a~1b", 1, id="escaped-slash"),
        pytest.param("/c%d", 2, id="percent"),
        pytest.param("/e^f", 3, id="caret"),
        pytest.param("/g|h", 4, id="pipe"),
        pytest.param("/i\\j", 5, id="backslash"),
        pytest.param('/k"l', 6, id="quote"),
        pytest.param("/ ", 7, id="space"),
        pytest.param("/m~0n", 8, id="escaped-tilde"),
    ],
)
def test_rfc_6901_examples(pointer: str, expected: Any) -> None:
    assert resolve_pointer(RFC_DOCUMENT, pointer) == expected


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("/", ("",), id="root-empty-key"),
        pytest.param("/a/0", ("a", "0"), id="two"),
        pytest.param("/~01", ("~1",), id="tilde-zero-then-one"),
        pytest.param("/~10", ("/0",), id="tilde-one-then-zero"),
        pytest.param("//", ("", ""), id="two-empty"),
    ],
)
def test_pointer_tokens_unescape_in_order(pointer: str, tokens: tuple[str, ...]) -> None:
    assert parse_pointer(pointer) == tokens
    assert "/" + "/".join(escape_token(t) for t in tokens) == pointer or pointer == ""


@pytest.mark.parametrize(
    ("pointer", "reason"),
    [
        pytest.param("/nope", "the object at the top has no member 'nope'", id="no-member"),
        pytest.param(
            "/foo/2", "index 2 is past the end of the 2-element array at /foo", id="past-end"
        ),
        pytest.param("/foo/-", "'-' at /foo names the element after the last one", id="dash"),
        pytest.param("/foo/01", "'01' is not an index of the array at /foo", id="leading-zero"),
        pytest.param("/foo/x", "'x' is not an index", id="not-a-number"),
        pytest.param("/foo/0/x", "the value at /foo/0 is a string, not an object", id="scalar"),
        pytest.param("/a~1b/c", "the value at /a~1b is a number", id="escaped-path"),
    ],
)
def test_pointer_lookup_failures_say_where(pointer: str, reason: str) -> None:
    with pytest.raises(LookupError) as caught:
        resolve_pointer(RFC_DOCUMENT, pointer)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "pointer",
    [
        pytest.param("foo", id="no-slash"),
        pytest.param("/~2", id="tilde-two"),
        pytest.param("/a~", id="trailing-tilde"),
    ],
)
def test_malformed_pointers(pointer: str) -> None:
    with pytest.raises(OptionError, match="JSON Pointer"):
        parse_pointer(pointer)


# --- timestamps ---


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("2024-09-02T12:34:56.789Z", 1725280496789, id="soracom-ms-z"),
        pytest.param("2025-03-17T09:00:00+09:00", 1742169600000, id="soracom-offset"),
        pytest.param("2025-03-24T00:00:00Z", 1742774400000, id="soracom-z"),
        pytest.param("2024-09-02T12:34:56.789-05:00", 1725298496789, id="negative-offset"),
        pytest.param("2024-09-02T12:34:56+0530", 1725260696000, id="basic-offset"),
        pytest.param("2025-03-17T09:00:00+09", 1742169600000, id="hour-offset"),
        pytest.param("2024-12-31T23:59:59.999-00:30", 1735691399999, id="offset-crosses-year"),
        pytest.param("2024-09-02T12:34:56.7Z", 1725280496700, id="one-digit-fraction"),
        pytest.param("2024-09-02T12:34:56.789999999Z", 1725280496789, id="nanoseconds-truncated"),
        pytest.param("2024-09-02T12:34:56,789Z", 1725280496789, id="comma-fraction"),
        pytest.param("2024-09-02t12:34:56.789z", 1725280496789, id="lower-case"),
        pytest.param("1970-01-01T00:00:00Z", 0, id="epoch"),
        pytest.param("9999-12-31T23:59:59.999Z", MAX_TIME_MS, id="last-instant"),
    ],
)
def test_iso_8601(text: str, ms: int) -> None:
    assert iso_8601_to_ms(text) == ms
    assert timestamp_to_ms(text, ISO_8601) == ms


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            "2024-09-02T12:34:56", "is not an ISO 8601 date and time with a zone", id="naive"
        ),
        pytest.param("2024-09-02", "with a zone", id="date-only"),
        pytest.param("2024-09-02 12:34:56Z", "with a zone", id="space-separator"),
        pytest.param("2024-09-02T12:34Z", "with a zone", id="no-seconds"),
        pytest.param(" 2024-09-02T12:34:56Z", "with a zone", id="leading-space"),
        pytest.param("yesterday", "'yesterday'", id="words"),
        pytest.param("2024-13-02T12:34:56Z", "is not a valid date and time", id="month-13"),
        pytest.param("2024-09-02T23:59:60Z", "is not a valid date and time", id="leap-second"),
        pytest.param("2024-09-02T12:34:56+24:00", "impossible UTC offset", id="offset-24h"),
        pytest.param("2024-09-02T12:34:56+09:60", "impossible UTC offset", id="offset-60min"),
        pytest.param("1969-12-31T23:59:59.999Z", "out of range", id="before-1970"),
        pytest.param("9999-12-31T23:59:59-01:00", "out of range", id="after-9999-utc"),
        pytest.param(1725280496, "is a number, but iso-8601 needs a string", id="number"),
        pytest.param(None, "is null, but iso-8601 needs a string", id="null"),
    ],
)
def test_bad_iso_8601(value: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        timestamp_to_ms(value, ISO_8601)


@pytest.mark.parametrize(
    ("value", "format", "ms"),
    [
        pytest.param(1742169600, UNIX_SECONDS, 1742169600000, id="seconds-int"),
        pytest.param(1742169600.123, UNIX_SECONDS, 1742169600123, id="seconds-fraction"),
        pytest.param(1742169600.0009, UNIX_SECONDS, 1742169600000, id="seconds-sub-ms-floor"),
        pytest.param(0, UNIX_SECONDS, 0, id="seconds-epoch"),
        pytest.param(1742169600123, UNIX_MILLISECONDS, 1742169600123, id="ms-int"),
        pytest.param(1742169600123.0, UNIX_MILLISECONDS, 1742169600123, id="ms-float"),
        pytest.param(1742169600123.9, UNIX_MILLISECONDS, 1742169600123, id="ms-fraction-floor"),
        pytest.param(MAX_TIME_MS, UNIX_MILLISECONDS, MAX_TIME_MS, id="ms-last-instant"),
    ],
)
def test_unix_times(value: float, format: str, ms: int) -> None:
    assert timestamp_to_ms(value, format) == ms


@pytest.mark.parametrize(
    ("value", "format", "reason"),
    [
        pytest.param("1742169600", UNIX_SECONDS, "is a string, but", id="string-seconds"),
        pytest.param("1742169600123", UNIX_MILLISECONDS, "needs a JSON number", id="string-ms"),
        pytest.param(True, UNIX_SECONDS, "is a boolean", id="boolean"),
        pytest.param([1], UNIX_SECONDS, "is an array", id="array"),
        pytest.param({"s": 1}, UNIX_SECONDS, "is an object", id="object"),
        pytest.param(float("nan"), UNIX_SECONDS, "is not a finite number", id="nan"),
        pytest.param(float("inf"), UNIX_MILLISECONDS, "is not a finite number", id="infinity"),
        pytest.param(-1, UNIX_MILLISECONDS, "out of range", id="negative"),
        pytest.param(MAX_TIME_MS + 1, UNIX_MILLISECONDS, "out of range", id="ms-past-9999"),
        pytest.param(10**20, UNIX_SECONDS, "out of range", id="seconds-huge"),
        pytest.param(1e300, UNIX_SECONDS, "out of range", id="seconds-huge-float"),
        pytest.param(1, "unix", "unknown format", id="alias-not-canonical"),
    ],
)
def test_bad_unix_times(value: Any, format: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        timestamp_to_ms(value, format)


# --- applying: single writes ---


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        pytest.param(JSON, '{"time":"2024-09-02T12:34:56.789Z"}', id="json"),
        pytest.param("text/plain", "hello", id="text"),
        pytest.param(JSON, '{"payload":"AAEC"}', id="binary"),
    ],
)
@pytest.mark.parametrize(
    ("header", "expected"),
    [pytest.param(None, RECEIVED, id="receive-time"), pytest.param(HEADER, HEADER, id="header")],
)
def test_without_options_header_or_receive_time(
    content_type: str, content: str, header: int | None, expected: int
) -> None:
    assert apply_options(NO_OPTIONS, content_type, content, RECEIVED, header) == [
        (expected, content)
    ]


@pytest.mark.parametrize(
    "header", [pytest.param(None, id="no-header"), pytest.param(HEADER, id="header")]
)
def test_the_payloads_timestamp_wins_and_content_is_kept_verbatim(header: int | None) -> None:
    content = '{ "temp" : 21.5, "time" : "2025-03-17T09:00:00+09:00" }'
    options = options_from_config({"customTimestamp": SORACOM_TIMESTAMP})
    assert apply_options(options, JSON, content, RECEIVED, header) == [(1742169600000, content)]


@pytest.mark.parametrize(
    ("options", "content", "ms"),
    [
        pytest.param(
            timestamp("/ts", UNIX_SECONDS), '{"ts":1742169600}', 1742169600000, id="seconds"
        ),
        pytest.param(
            timestamp("/ts", UNIX_SECONDS), '{"ts":1742169600.25}', 1742169600250, id="seconds-f"
        ),
        pytest.param(
            timestamp("/ts", UNIX_MILLISECONDS),
            '{"ts":1742169600123}',
            1742169600123,
            id="milliseconds",
        ),
        pytest.param(
            timestamp("/meta/a~1b/m~0n"),
            '{"meta":{"a/b":{"m~n":"2024-09-02T12:34:56.789Z"}}}',
            1725280496789,
            id="escaped-pointer",
        ),
        pytest.param(
            timestamp("/readings/1/t"),
            '{"readings":[{"t":"x"},{"t":"2025-03-24T00:00:00Z"}]}',
            1742774400000,
            id="array-index",
        ),
        pytest.param(timestamp("/"), '{"":"2025-03-24T00:00:00Z"}', 1742774400000, id="empty-key"),
    ],
)
def test_custom_timestamp_reads_the_payload(options: HarvestOptions, content: str, ms: int) -> None:
    assert apply_options(options, JSON, content, RECEIVED, None) == [(ms, content)]


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json; charset=utf-8", id="charset"),
        pytest.param("Application/JSON", id="upper-case"),
        pytest.param("application/vnd.example+json", id="suffix"),
    ],
)
def test_json_content_types(content_type: str) -> None:
    content = '{"time":"2025-03-24T00:00:00Z"}'
    assert apply_options(timestamp(), content_type, content, RECEIVED, None) == [
        (1742774400000, content)
    ]


UNUSABLE = [
    pytest.param(JSON, '{"temp":1}', "no timestamp at /time: the object at the top", id="missing"),
    pytest.param(
        JSON, '{"time":"noon"}', "the timestamp at /time is not an ISO 8601", id="unparseable"
    ),
    pytest.param(JSON, '{"time":"2024-09-02T12:34:56"}', "with a zone", id="no-zone"),
    pytest.param(JSON, '{"time":1742169600}', "is a number, but iso-8601", id="wrong-type"),
    pytest.param(JSON, '["2025-03-24T00:00:00Z"]', "'time' is not an index", id="top-array"),
    pytest.param(JSON, '"2025-03-24T00:00:00Z"', "is a string, not an object", id="top-string"),
    pytest.param("text/plain", '{"time":"2025-03-24T00:00:00Z"}', "not JSON", id="text"),
    pytest.param(JSON, '{"time":', "not valid JSON", id="invalid-json"),
    pytest.param(JSON, "[" * 5000, "not valid JSON", id="too-deep"),
    pytest.param(JSON, '{"payload":"AAEC"}', "no member 'time'", id="binary"),
]


@pytest.mark.parametrize(("content_type", "content", "reason"), UNUSABLE)
def test_reject_refuses_a_payload_without_a_usable_timestamp(
    content_type: str, content: str, reason: str
) -> None:
    with pytest.raises(OptionError, match=r"^custom timestamp: ") as caught:
        apply_options(timestamp(), content_type, content, RECEIVED, HEADER)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("content_type", "content", "reason"), UNUSABLE)
@pytest.mark.parametrize(
    ("header", "expected"),
    [pytest.param(None, RECEIVED, id="receive-time"), pytest.param(HEADER, HEADER, id="header")],
)
def test_receive_time_stores_as_if_the_option_were_off(
    content_type: str, content: str, reason: str, header: int | None, expected: int
) -> None:
    options = timestamp(onMissingTimestamp="receiveTime")
    assert apply_options(options, content_type, content, RECEIVED, header) == [(expected, content)]


def test_the_category_is_kept_for_the_caller() -> None:
    options = timestamp(category="weather")
    assert options.category == "weather"
    content = '{"time":"2025-03-24T00:00:00Z"}'
    assert apply_options(options, JSON, content, RECEIVED, None) == [(1742774400000, content)]


def test_category_alone_changes_no_time() -> None:
    options = options_from_config({"category": "weather"})
    assert options == HarvestOptions(category="weather")
    assert apply_options(options, "text/plain", "x", RECEIVED, HEADER) == [(HEADER, "x")]


# --- applying: batch writes ---


def test_soracoms_batch_example() -> None:
    """Notes 2.3 (source H3): array pointer /data, time pointer /time."""
    body = (
        '{"data":[{"time":"2025-03-17T09:00:00+09:00","temperature":10.5},\n'
        '         {"time":"2025-03-18T09:00:00+09:00","temperature":9.4}]}'
    )
    options = options_from_config(
        {
            "enabled": True,
            "customTimestamp": SORACOM_TIMESTAMP,
            "batchWrite": {"enabled": True, "pointer": "/data"},
        }
    )
    assert apply_options(options, JSON, body, RECEIVED, None) == [
        (1742169600000, '{"time":"2025-03-17T09:00:00+09:00","temperature":10.5}'),
        (1742256000000, '{"time":"2025-03-18T09:00:00+09:00","temperature":9.4}'),
    ]


def test_batch_of_the_whole_body_ignores_the_header() -> None:
    body = '[{"t": 1742169600}, {"t": 1742256000.5, "v": [1, 2]}]'
    assert apply_options(batch("", "/t", UNIX_SECONDS), JSON, body, RECEIVED, HEADER) == [
        (1742169600000, '{"t":1742169600}'),
        (1742256000500, '{"t":1742256000.5,"v":[1,2]}'),
    ]


def test_batch_elements_are_compact_and_keep_non_ascii() -> None:
    body = '{"data": [ {"名前": "温度", "time": "2025-03-24T00:00:00Z", "x": "\\u00e9"} ]}'
    assert apply_options(batch(), JSON, body, RECEIVED, None) == [
        (1742774400000, '{"名前":"温度","time":"2025-03-24T00:00:00Z","x":"é"}')
    ]


def test_batch_timestamp_pointer_is_relative_to_each_element() -> None:
    body = json.dumps(
        {"log": {"a/b": [{"meta": {"ts": 1742169600123}}, {"meta": {"ts": 1742169600124}}]}}
    )
    options = batch("/log/a~1b", "/meta/ts", UNIX_MILLISECONDS)
    assert [t for t, _ in apply_options(options, JSON, body, RECEIVED, None)] == [
        1742169600123,
        1742169600124,
    ]


def test_batch_keeps_elements_at_the_same_millisecond_in_order() -> None:
    body = json.dumps({"data": [{"time": "2025-03-24T00:00:00Z", "n": n} for n in range(3)]})
    assert apply_options(batch(), JSON, body, RECEIVED, None) == [
        (1742774400000, f'{{"time":"2025-03-24T00:00:00Z","n":{n}}}') for n in range(3)
    ]


def elements(count: int) -> list[dict[str, Any]]:
    return [{"time": 1742169600000 + n, "n": n} for n in range(count)]


@pytest.mark.parametrize(
    "count",
    [pytest.param(1, id="one"), pytest.param(99, id="99"), pytest.param(100, id="limit-100")],
)
def test_batch_accepts_up_to_100_elements(count: int) -> None:
    body = json.dumps({"data": elements(count)})
    entries = apply_options(batch(format=UNIX_MILLISECONDS), JSON, body, RECEIVED, None)
    assert entries == [(e["time"], compact(e)) for e in elements(count)]
    assert MAX_BATCH_ELEMENTS == 100


@pytest.mark.parametrize(
    "count", [pytest.param(101, id="limit-plus-one-101"), pytest.param(1000, id="1000")]
)
def test_batch_refuses_more_than_100_elements(count: int) -> None:
    body = json.dumps({"data": elements(count)})
    with pytest.raises(
        OptionError,
        match=rf"^batch write: the array at /data has {count} elements; at most 100 per send$",
    ):
        apply_options(batch(format=UNIX_MILLISECONDS), JSON, body, RECEIVED, None)


GOOD = {"time": "2025-03-24T00:00:00Z"}


@pytest.mark.parametrize(
    ("array", "content_type", "body", "message"),
    [
        pytest.param("/data", JSON, {"data": []}, r"the array at /data is empty$", id="empty"),
        pytest.param("", JSON, [], r"the array at the top is empty$", id="empty-top"),
        pytest.param(
            "/data",
            JSON,
            {"items": [GOOD]},
            r"no array at /data: the object at the top has no member 'data'$",
            id="no-array",
        ),
        pytest.param(
            "/data",
            JSON,
            {"data": GOOD},
            r"the value at /data is an object, not an array$",
            id="object-not-array",
        ),
        pytest.param(
            "", JSON, GOOD, r"the value at the top is an object, not an array$", id="top-object"
        ),
        pytest.param(
            "/data",
            "text/plain",
            {"data": [GOOD]},
            r"the payload is not JSON \(content type 'text/plain'\)$",
            id="not-json",
        ),
        pytest.param(
            "/data",
            JSON,
            {"data": [GOOD, GOOD, {"temp": 1}, {"time": "bad"}]},
            r"element 2: no timestamp at /time: the object at the top has no member 'time'$",
            id="element-missing-time",
        ),
        pytest.param(
            "/data",
            JSON,
            {"data": [GOOD, {"time": "2025-03-24T00:00:00"}]},
            r"element 1: the timestamp at /time is not an ISO 8601 date and time with a zone",
            id="element-no-zone",
        ),
        pytest.param(
            "/data",
            JSON,
            {"data": [GOOD, "2025-03-24T00:00:00Z"]},
            r"element 1: no timestamp at /time: the value at the top is a string",
            id="element-scalar",
        ),
    ],
)
def test_batch_is_all_or_nothing(array: str, content_type: str, body: Any, message: str) -> None:
    for policy in (REJECT, RECEIVE_TIME):  # a batch element always needs its own time
        with pytest.raises(OptionError, match=r"^batch write: ") as caught:
            apply_options(
                batch(array, onMissingTimestamp=policy),
                content_type,
                json.dumps(body),
                RECEIVED,
                HEADER,
            )
        assert caught.match(message)


def test_batch_refuses_invalid_json() -> None:
    with pytest.raises(OptionError, match=r"^batch write: the payload is not valid JSON: "):
        apply_options(batch(), JSON, '{"data": [', RECEIVED, None)


# --- properties ---

OFFSETS = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
#: Microseconds since the epoch, a day inside the range so that any offset stays in 1..9999.
INSTANTS = st.integers(86_400_000_000, (MAX_TIME_MS - 86_400_000) * 1000)
SPECS = st.sampled_from(["seconds", "milliseconds", "microseconds"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)


def iso(micros: int, zone: timezone, spec: str, zulu: bool) -> tuple[str, int]:
    """An ISO 8601 text of an instant and the ms it must read back as."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    text = moment.astimezone(UTC if zulu else zone).isoformat(timespec=spec)
    if zulu:
        text = text.replace("+00:00", "Z")
    kept = {"seconds": 1_000_000, "milliseconds": 1000, "microseconds": 1}[spec]
    return text, micros // kept * kept // 1000


@given(micros=INSTANTS, zone=OFFSETS, spec=SPECS, zulu=st.booleans())
def test_iso_8601_round_trips(micros: int, zone: timezone, spec: str, zulu: bool) -> None:
    text, ms = iso(micros, zone, spec, zulu)
    assert iso_8601_to_ms(text) == ms


@given(ms=st.integers(0, MAX_TIME_MS))
def test_unix_times_round_trip(ms: int) -> None:
    assert timestamp_to_ms(ms, UNIX_MILLISECONDS) == ms
    assert timestamp_to_ms(ms // 1000, UNIX_SECONDS) == ms // 1000 * 1000


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(
    array_key=st.text(max_size=6),
    time_key=st.text(max_size=6),
    items=st.lists(
        st.tuples(
            INSTANTS,
            OFFSETS,
            SPECS,
            st.booleans(),
            st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
        ),
        min_size=1,
        max_size=MAX_BATCH_ELEMENTS,
    ),
)
def test_any_batch_of_1_to_100_objects_round_trips_times_and_contents(
    array_key: str,
    time_key: str,
    items: list[tuple[int, timezone, str, bool, dict[str, Any]]],
) -> None:
    expected = []
    body = []
    for micros, zone, spec, zulu, extra in items:
        text, ms = iso(micros, zone, spec, zulu)
        element = {**extra, time_key: text}
        body.append(element)
        expected.append((ms, element))
    options = batch("/" + escape_token(array_key), "/" + escape_token(time_key))
    entries = apply_options(options, JSON, json.dumps({array_key: body}), RECEIVED, HEADER)
    assert [t for t, _ in entries] == [t for t, _ in expected]
    assert [json.loads(c) for _, c in entries] == [e for _, e in expected]
    assert [c for _, c in entries] == [compact(e) for _, e in expected]
