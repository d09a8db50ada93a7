"""SORACOM Binary Parser: custom formats, @json and @sensit.

The section numbers and vectors T1-T6 are those of
spec/notes/binary-parser-timestamps-beam-unified.md, section 1.
"""

from __future__ import annotations

import math
import struct
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harvest.payload.binary_parser import (
    RESERVED_NAMES_SIGFOX,
    BinaryParserError,
    Parser,
    compile_format,
    parser_for,
    to_json,
)

T1_FORMAT = (
    "temp:0:int:16:/100 hum:2:int:16:/100 press:4:int:16:7:+100000/100 upcount:6:uint:16 "
    "light:8:int:16 sound:10:int:16 dispflg:12:bool:7 movex:12:bool:6 movey:13:bool:5 "
    "movez:12:bool:4 ledflg:12:bool:3 volume:13:int:16"
)
T2_FORMAT = (
    "temp:0:int:16:/100 hum:2:int:16:/100 press:4:int:16:7:+100000/100 uptime:6:uint:16 "
    "light:8:int:16 sound:10:int:16 dispflg:12:bool:7 movex:12:bool:6 movey:13:bool:5 "
    "movez:12:bool:4 volume:13:int:16"
)


def parse_hex(format_text: str, payload_hex: str) -> dict[str, Any]:
    return compile_format(format_text).parse(bytes.fromhex(payload_hex))


def parse_json(format_text: str, payload_hex: str) -> str:
    return to_json(parse_hex(format_text, payload_hex))


# --- notes 1.4: the test vectors, compared as JSON text so key order and 17-not-17.0 count ---


@pytest.mark.parametrize(
    ("format_text", "payload_hex", "expected"),
    [
        pytest.param(
            T1_FORMAT,
            "06a4132405cc001a02e300ac87002a",
            '{"temp":17,"hum":49,"press":1014.84,"upcount":26,"light":739,"sound":172,'
            '"dispflg":true,"movex":false,"movey":false,"movez":false,"ledflg":false,'
            '"volume":42,"binaryParserEnabled":true}',
            id="T1-real-run-bit-offset-and-chained-ops",
        ),
        pytest.param(
            T2_FORMAT,
            "06a41c2003c8000102e101229f01a7",
            '{"temp":17,"hum":72,"press":1009.68,"uptime":1,"light":737,"sound":290,'
            '"dispflg":true,"movex":false,"movey":false,"movez":true,"volume":423,'
            '"binaryParserEnabled":true}',
            id="T2-second-real-run",
        ),
        pytest.param(
            "flag:0:bool:7 temp:1:int:13:/10 humid:3:uint:8:/100 lat::float:32 long::float:32",
            "8007F85F420EADFF430BBE86",
            '{"flag":true,"temp":25.5,"humid":0.95,"lat":35.669918060302734,'
            '"long":139.74423217773438,"binaryParserEnabled":true}',
            id="T3-docs-example-typo-fixed",
        ),
        pytest.param(
            "value1::int:6 value2::int:8",
            "FCFF",
            '{"value1":-1,"value2":-1,"binaryParserEnabled":true}',
            id="T4-blank-index-skips-unread-bits",
        ),
        pytest.param(
            "head::uint:8 lat::int:32:little-endian:/1000000 lon::int:32:little-endian:/1000000 "
            "alt::int:16:little-endian",
            "21d473200255ad54082800",
            '{"head":33,"lat":35.681236,"lon":139.767125,"alt":40,"binaryParserEnabled":true}',
            id="T5-little-endian-gps",
        ),
    ],
)
def test_custom_format_vectors(format_text: str, payload_hex: str, expected: str) -> None:
    assert parse_json(format_text, payload_hex) == expected


# --- @sensit (notes 1.5, T6; SORACOM's npm-sensit index.test.js) ---


def _sensit(**fields: Any) -> str:
    """npm-sensit's expected object, keys in the order its index.js builds them."""
    return to_json({**fields, "binaryParserEnabled": True})


@pytest.mark.parametrize(
    ("payload_hex", "expected"),
    [
        pytest.param(
            "816c1e71",
            '{"mode":1,"modeText":"Temperature + Humidity","timeframe":0,'
            '"timeframeText":"10 mins","type":0,"typeText":"Regular, no alert","battery":4.1,'
            '"tempCLowPrecision":23,"tempFLowPrecision":73.4,"tempC":26.75,"tempF":80.15,'
            '"reedSwitchState":0,"humidity":56.5,"binaryParserEnabled":true}',
            id="T6-soracom-blog",
        ),
        pytest.param(
            "E9671854",
            _sensit(
                mode=1,
                modeText="Temperature + Humidity",
                timeframe=1,
                timeframeText="1 hour",
                type=3,
                typeText="New mode",
                battery=3.85,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                tempC=26,
                tempF=78.80000000000001,
                reedSwitchState=0,
                humidity=42,
            ),
            id="npm-example-1-temperature",
        ),
        pytest.param(
            "C2646418",
            _sensit(
                mode=2,
                modeText="Light",
                timeframe=0,
                timeframeText="10 mins",
                type=2,
                typeText="Alert",
                battery=3.7,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                lux=2.88,
                numAlerts=24,
            ),
            id="npm-example-2-light",
        ),
        pytest.param(
            "e26e9200",
            _sensit(
                mode=2,
                modeText="Light",
                timeframe=0,
                timeframeText="10 mins",
                type=3,
                typeText="New mode",
                battery=4.2,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                lux=11.52,
                numAlerts=0,
            ),
            id="npm-light-real-1",
        ),
        pytest.param(
            "c26e4c01",
            _sensit(
                mode=2,
                modeText="Light",
                timeframe=0,
                timeframeText="10 mins",
                type=2,
                typeText="Alert",
                battery=4.2,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                lux=0.96,
                numAlerts=1,
            ),
            id="npm-light-real-2",
        ),
        pytest.param(
            "c46d2902",
            _sensit(
                mode=4,
                modeText="Move",
                timeframe=0,
                timeframeText="10 mins",
                type=2,
                typeText="Alert",
                battery=4.15,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                tempC=24.125,
                tempF=75.42500000000001,
                reedSwitchState=0,
                numAlerts=2,
            ),
            id="npm-move-real-1",
        ),
        pytest.param(
            "e56d2e00",
            _sensit(
                mode=5,
                modeText="Reed switch",
                timeframe=0,
                timeframeText="10 mins",
                type=3,
                typeText="New mode",
                battery=4.15,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                tempC=24.75,
                tempF=76.55000000000001,
                reedSwitchState=0,
                numAlerts=0,
            ),
            id="npm-reed-switch-real-1",
        ),
        pytest.param(
            "c56d6f01",
            _sensit(
                mode=5,
                modeText="Reed switch",
                timeframe=0,
                timeframeText="10 mins",
                type=2,
                typeText="Alert",
                battery=4.15,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                tempC=24.875,
                tempF=76.775,
                reedSwitchState=1,
                numAlerts=1,
            ),
            id="npm-reed-switch-real-2",
        ),
        pytest.param(
            "e06d3024",
            _sensit(
                mode=0,
                modeText="Button",
                timeframe=0,
                timeframeText="10 mins",
                type=3,
                typeText="New mode",
                battery=4.15,
                tempCLowPrecision=23,
                tempFLowPrecision=73.4,
                tempC=25,
                tempF=77,
                reedSwitchState=0,
                majorVersion=2,
                minorVersion=4,
            ),
            id="npm-button-real-1",
        ),
    ],
)
def test_sensit_vectors(payload_hex: str, expected: str) -> None:
    assert parse_json("@sensit", payload_hex) == expected


def test_sensit_door_mode_reports_only_the_alert_count() -> None:
    result = parse_hex("@sensit", "036c1e07")
    assert list(result)[9:] == ["numAlerts", "binaryParserEnabled"]
    assert (result["modeText"], result["numAlerts"]) == ("Door", 7)


def test_sensit_unknown_mode_reports_only_the_common_keys() -> None:
    result = parse_hex("@sensit", "066c1e07")
    assert list(result)[8:] == ["tempFLowPrecision", "binaryParserEnabled"]
    assert result["modeText"] == "Unknown"


def test_sensit_needs_a_four_byte_frame_and_ignores_extra_bytes() -> None:
    with pytest.raises(BinaryParserError, match=r"@sensit needs a 4-byte .* has 3 bytes"):
        parse_hex("@sensit", "816c1e")
    assert parse_hex("@sensit", "816c1e71ffff") == parse_hex("@sensit", "816c1e71")


# --- @json (notes 1.2, 1.5) ---


def test_json_keeps_the_object_and_appends_the_flag_last() -> None:
    payload = '{"temp":21.5,"name":"ラボ","nested":{"a":[1,2.0,null]},"ok":false}'.encode()
    result = compile_format("@json").parse(payload)
    assert to_json(result) == (
        '{"temp":21.5,"name":"ラボ","nested":{"a":[1,2.0,null]},"ok":false,'
        '"binaryParserEnabled":true}'
    )


def test_json_moves_a_sent_flag_to_the_end_and_sets_it_true() -> None:
    result = compile_format("@json").parse(b'{"binaryParserEnabled":false,"a":1}')
    assert list(result.items()) == [("a", 1), ("binaryParserEnabled", True)]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(b"[1,2]", r"must be a JSON object, not list", id="array"),
        pytest.param(b"42", r"must be a JSON object, not int", id="number"),
        pytest.param(b'{"a":', r"not JSON", id="truncated"),
        pytest.param(b"", r"not JSON", id="empty"),
        pytest.param(b'{"a":NaN}', r"holds NaN, which is not JSON", id="nan"),
        pytest.param(b'{"a":"\xff"}', r"not UTF-8: byte 6 is 0xff", id="not-utf8"),
    ],
)
def test_json_rejects(payload: bytes, message: str) -> None:
    with pytest.raises(BinaryParserError, match=message):
        compile_format("@json").parse(payload)


@pytest.mark.parametrize(
    ("format_text", "message"),
    [
        pytest.param("@button", r"unsupported predefined format '@button'", id="button"),
        pytest.param(
            "@soracom.button", r"unsupported predefined format '@soracom\.button'", id="global"
        ),
        pytest.param("@gpsmultiunit", r"unsupported predefined format", id="gpsmultiunit"),
        pytest.param("@sensit.v3", r"unsupported predefined format", id="sensit-v3"),
        pytest.param("@foo", r"unsupported predefined format '@foo'", id="unknown"),
        pytest.param("@JSON", r"unsupported predefined format '@JSON'", id="case-matters"),
        pytest.param("@json a:0:uint:8", r"must be used alone", id="mixed-with-custom"),
    ],
)
def test_unsupported_predefined_formats(format_text: str, message: str) -> None:
    with pytest.raises(BinaryParserError, match=message):
        compile_format(format_text)


def test_predefined_names_tolerate_surrounding_whitespace() -> None:
    assert compile_format(" @json\n").source == "@json"


# --- compile-time errors ---


@pytest.mark.parametrize(
    ("format_text", "message"),
    [
        pytest.param("", r"the format is empty", id="empty"),
        pytest.param("x:0:double:64", r"unknown type 'double' in field 'x'", id="bad-type"),
        pytest.param("x:0:string:4", r"unknown type 'string' in field 'x'", id="string-type"),
        pytest.param("x:0:Int:8", r"unknown type 'Int'", id="type-case-matters"),
        pytest.param("te.mp:0:int:8", r"field name 'te\.mp' may only use letters", id="dot-name"),
        pytest.param("温度:0:int:8", r"field name '温度' may only use letters", id="non-ascii"),
        pytest.param(":0:int:8", r"has no name", id="no-name"),
        pytest.param(
            "x:0:int:8:+1+1+1+1+1+1",
            r"field 'x' has 6 arithmetic operations; at most 5",
            id="too-many-ops",
        ),
        pytest.param(
            "x:0:int:16:middle-endian", r"unknown endianness 'middle-endian'", id="bad-endian"
        ),
        pytest.param("x:0:int:16:little_endian", r"unknown endianness", id="underscore-endian"),
        pytest.param("x:0:int:16:little-endian:big-endian", r"endianness twice", id="endian-twice"),
        pytest.param(
            "x:0:int:12:little-endian", r"little-endian field 'x' must cover whole", id="le-12"
        ),
        pytest.param("x:0:int:16:3:little-endian", r"bit offset 7, not 16 bits", id="le-off"),
        pytest.param(
            "flag:0:bool:7 long:float:32",
            r"field 'long' has the type 'float' where the byte index belongs; "
            r"write 'long::float:32'",
            id="docs-typo",
        ),
        pytest.param("long:float", r"type 'float' where the byte index", id="typo-no-length"),
        pytest.param("x:0", r"not of the form name:byteIndex:type", id="no-type"),
        pytest.param("x:-1:int:8", r"byte index '-1' of field 'x'", id="negative-index"),
        pytest.param("x:1.0:int:8", r"byte index '1\.0'", id="byte-dot-bit-index"),
        pytest.param("x:0:int", r"int field 'x' needs its length", id="no-length"),
        pytest.param("x:0:int:0", r"must be 1\.\.64 bits, not 0", id="zero-bits"),
        pytest.param("x:0:uint:65", r"must be 1\.\.64 bits, not 65", id="65-bits"),
        pytest.param("x:0:float:16", r"float field 'x' must be 32 or 64", id="float-16"),
        pytest.param("x:0:int:8:8", r"bit offset '8' of field 'x' must be", id="bit-offset-8"),
        pytest.param("x:0:int:8:6:5", r"bit offset twice", id="bit-offset-twice"),
        pytest.param("x:0:int:8:/0", r"field 'x' divides by zero", id="div-zero"),
        pytest.param("x:0:int:8:*2/0.0", r"divides by zero", id="div-zero-decimal"),
        pytest.param("x:0:int:8:*-1", r"operations '\*-1' of field 'x'", id="signed-operand"),
        pytest.param("x:0:int:8:*1e3", r"operations '\*1e3'", id="exponent-operand"),
        pytest.param("x:0:int:8:/10:+1", r"operations twice", id="ops-split"),
        pytest.param(
            f"x:0:int:8:*{2**63}", rf"operand {2**63} of field 'x' is too large", id="huge-operand"
        ),
        pytest.param("x:0:int:8:foo", r"unrecognised setting 'foo'", id="junk-setting"),
        pytest.param("x:0:int:8:", r"empty setting", id="trailing-colon"),
        pytest.param("x:0:bool", r"bool field 'x' takes exactly one setting", id="bool-bare"),
        pytest.param("x:0:bool:8", r"bit offset 0\.\.7", id="bool-bit-8"),
        pytest.param("x:0:bool:7:/2", r"exactly one setting", id="bool-with-ops"),
        pytest.param("x:0:char:0", r"char field 'x' takes exactly one setting", id="char-0"),
        pytest.param("x:0:char:2:little-endian", r"char field 'x'", id="char-endian"),
        pytest.param("a:0:uint:8 a:1:uint:8", r"field name 'a' is used twice", id="duplicate"),
        pytest.param("binaryParserEnabled:0:bool:7", r"the parser's own flag", id="reserved-flag"),
    ],
)
def test_invalid_formats_are_rejected_at_compile_time(format_text: str, message: str) -> None:
    with pytest.raises(BinaryParserError, match=message):
        compile_format(format_text)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(BinaryParserError, ValueError)


# --- payload errors ---


@pytest.mark.parametrize(
    ("format_text", "payload_hex", "message"),
    [
        pytest.param(
            "flag:0:bool:7 temp:1:int:16",
            "80ff",
            "field 'temp' needs bytes 1..2 but the payload has 2 bytes",
            id="int16",
        ),
        pytest.param(
            "temp:1:int:16",
            "80",
            "field 'temp' needs bytes 1..2 but the payload has 1 byte",
            id="1",
        ),
        pytest.param(
            "flag:0:bool:7", "", "field 'flag' needs byte 0 but the payload has 0 bytes", id="0"
        ),
        pytest.param(
            "a::uint:8 b::int:13",
            "0102",
            "field 'b' needs bytes 1..2 but the payload has 2 bytes",
            id="blank-index-bits",
        ),
        pytest.param(
            "lat::float:64",
            "00" * 7,
            "field 'lat' needs bytes 0..7 but the payload has 7 bytes",
            id="float64",
        ),
        pytest.param(
            "s:1:char:3",
            "414243",
            "field 's' needs bytes 1..3 but the payload has 3 bytes",
            id="char",
        ),
        pytest.param(
            "s:0:char:3",
            "41ff43",
            "field 's' is char but byte 1 is 0xff, which is not ASCII",
            id="ascii",
        ),
    ],
)
def test_payload_errors(format_text: str, payload_hex: str, message: str) -> None:
    with pytest.raises(BinaryParserError) as caught:
        parse_hex(format_text, payload_hex)
    assert str(caught.value) == message


def test_trailing_bytes_the_format_does_not_read_are_ignored() -> None:
    assert parse_hex("a:0:uint:8", "01ffff") == {"a": 1, "binaryParserEnabled": True}


# --- bits, endianness and blank indexes (notes 1.3) ---


def test_bool_bit_offsets_count_from_the_least_significant_bit() -> None:
    fmt = " ".join(f"b{bit}:0:bool:{bit}" for bit in range(7, -1, -1))
    result = parse_hex(fmt, "a5")  # 1010 0101
    assert [result[f"b{bit}"] for bit in range(7, -1, -1)] == [
        True,
        False,
        True,
        False,
        False,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("format_text", "payload_hex", "expected"),
    [
        pytest.param("v:0:uint:16:little-endian", "3412", 0x1234, id="uint16-le"),
        pytest.param("v:0:uint:16:big-endian", "1234", 0x1234, id="uint16-be-explicit"),
        pytest.param("v:0:int:16:little-endian", "feff", -2, id="int16-le-negative"),
        pytest.param("v:0:uint:8:little-endian", "80", 128, id="uint8-le"),
        pytest.param("v:1:uint:32:little-endian", "0078563412", 0x12345678, id="uint32-le-at-1"),
        pytest.param("v:0:float:32:little-endian", "0000c03f", 1.5, id="float32-le"),
        pytest.param("v:0:float:64", struct.pack(">d", -2.25).hex(), -2.25, id="float64-be"),
        pytest.param(
            "v:0:float:64:little-endian", struct.pack("<d", 0.1).hex(), 0.1, id="float64-le"
        ),
        pytest.param("v:0:uint:4:3", "0f", 15, id="uint4-low-nibble"),
        pytest.param("v:0:uint:12:3", "abcd", 0xBCD, id="uint12-from-bit-3"),
        pytest.param("v:0:int:4:3", "08", -8, id="int4-from-bit-3"),
        pytest.param("v:0:uint:64", "ff" * 8, 2**64 - 1, id="uint64-exact"),
        pytest.param("v:0:int:64", "80" + "00" * 7, -(2**63), id="int64-min"),
        pytest.param("v:0:char:6", "414243444546", "ABCDEF", id="char-6"),
    ],
)
def test_reading_values(format_text: str, payload_hex: str, expected: object) -> None:
    assert parse_hex(format_text, payload_hex)["v"] == expected


@pytest.mark.parametrize(
    ("format_text", "payload_hex", "expected"),
    [
        pytest.param(
            "value1::int:6 value2::int:8", "fc7f", {"value1": -1, "value2": 127}, id="docs-rule"
        ),
        pytest.param(
            "a::uint:4 b::uint:8", "abcd", {"a": 0xA, "b": 0xCD}, id="partial-byte-then-next"
        ),
        pytest.param(
            "a:2:uint:8 b::uint:8 c::uint:16",
            "00000102030400",
            {"a": 1, "b": 2, "c": 0x0304},
            id="continue-after-explicit-index",
        ),
        pytest.param(
            "a::uint:16 b:0:uint:8 c::uint:8",
            "010203",
            {"a": 0x0102, "b": 1, "c": 2},
            id="continue-after-the-last-field-not-the-furthest",
        ),
        pytest.param(
            "b1::bool:7 b2::bool:6 i1:1:uint:16",
            "c01234",
            {"b1": True, "b2": True, "i1": 0x1234},
            id="sigfox-readme-bools-share-a-byte",
        ),
        pytest.param(
            "f:3:bool:0 g::bool:1",
            "00000002",
            {"f": False, "g": True},
            id="bool-after-explicit-bool",
        ),
        pytest.param(
            "b::bool:7 n::uint:8",
            "807f",
            {"b": True, "n": 127},
            id="non-bool-after-bool-takes-next-byte",
        ),
        pytest.param(
            "n::uint:8 b::bool:7",
            "ff80",
            {"n": 255, "b": True},
            id="bool-after-int-takes-next-byte",
        ),
        pytest.param(
            "lat::float:32 n::uint:8",
            "3fc0000009",
            {"lat": 1.5, "n": 9},
            id="after-float",
        ),
    ],
)
def test_blank_byte_index(format_text: str, payload_hex: str, expected: dict[str, Any]) -> None:
    assert parse_hex(format_text, payload_hex) == {**expected, "binaryParserEnabled": True}


# --- arithmetic and number printing (notes 1.2, 1.3) ---


@pytest.mark.parametrize(
    ("ops", "raw", "expected_json"),
    [
        pytest.param("+1*2", 3, "8", id="left-to-right-not-precedence"),
        pytest.param("*2+1", 3, "7", id="mul-then-add"),
        pytest.param("-10", 3, "-7", id="subtract"),
        pytest.param("/100", 1700, "17", id="integral-quotient-prints-as-int"),
        pytest.param("/100", 1701, "17.01", id="fraction"),
        pytest.param("*0.5", 3, "1.5", id="decimal-operand"),
        pytest.param("*0.5", 4, "2", id="decimal-operand-integral"),
        pytest.param("/4*4", 7, "7", id="division-then-multiply"),
        pytest.param("+1+1+1+1+1", 0, "5", id="five-ops-allowed"),
    ],
)
def test_operations(ops: str, raw: int, expected_json: str) -> None:
    result = compile_format(f"v:0:uint:16:{ops}").parse(raw.to_bytes(2, "big"))
    assert to_json(result["v"]) == expected_json


def test_float32_values_print_at_double_precision() -> None:
    assert parse_json("lat:0:float:32", "420eadff") == (
        '{"lat":35.669918060302734,"binaryParserEnabled":true}'
    )


def test_float_results_that_are_integral_print_as_ints() -> None:
    assert parse_json("v:0:float:32:*2", "3fc00000") == '{"v":3,"binaryParserEnabled":true}'


@pytest.mark.parametrize(
    ("format_text", "payload_hex"),
    [
        pytest.param("v:0:float:32", "7fc00000", id="nan"),
        pytest.param("v:0:float:32", "7f800000", id="inf"),
        pytest.param("v:0:float:32", "ff800000", id="minus-inf"),
        pytest.param("v:0:float:64:*2", "7fefffffffffffff", id="overflow"),
    ],
)
def test_non_finite_floats_become_null(format_text: str, payload_hex: str) -> None:
    assert parse_json(format_text, payload_hex) == '{"v":null,"binaryParserEnabled":true}'


# --- the Parser object, the cache and to_json ---


def test_parser_is_immutable_and_reports_its_field_names() -> None:
    parser = compile_format("lat::float:32 lng::float:32")
    assert parser.field_names == ("lat", "lng")
    assert set(parser.field_names) <= RESERVED_NAMES_SIGFOX
    with pytest.raises(FrozenInstanceError):
        parser.source = "x"  # type: ignore[misc]


def test_each_parse_returns_a_new_object() -> None:
    parser = compile_format("a:0:uint:8")
    first = parser.parse(b"\x01")
    first["a"] = 99
    assert parser.parse(b"\x01") == {"a": 1, "binaryParserEnabled": True}


def test_parser_for_caches_compiled_parsers_but_not_errors() -> None:
    assert parser_for("a:0:uint:8") is parser_for("a:0:uint:8")
    assert isinstance(parser_for("@sensit"), Parser)
    for _ in range(2):
        with pytest.raises(BinaryParserError, match="unsupported predefined format"):
            parser_for("@button")


def test_to_json_is_compact_and_keeps_key_order() -> None:
    assert to_json({"z": 1, "a": [True, None], "m": "é"}) == '{"z":1,"a":[true,null],"m":"é"}'


def test_to_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json({"v": math.nan})


def test_the_flag_is_always_the_last_key() -> None:
    for format_text, payload in [
        ("a:0:uint:8 b:0:bool:0", b"\x01"),
        ("@json", b'{"x":1}'),
        ("@sensit", bytes.fromhex("816c1e71")),
    ]:
        assert list(compile_format(format_text).parse(payload))[-1] == "binaryParserEnabled"


# --- properties: encode with struct, parse back (STYLE.md 11) ---


@given(st.integers(0, 2**16 - 1))
def test_uint16_round_trips_in_both_byte_orders(value: int) -> None:
    parser = compile_format("be::uint:16 le::uint:16:little-endian")
    assert parser.parse(struct.pack(">H", value) + struct.pack("<H", value)) == {
        "be": value,
        "le": value,
        "binaryParserEnabled": True,
    }


@given(st.integers(-(2**31), 2**31 - 1))
def test_int32_round_trips_in_both_byte_orders(value: int) -> None:
    parser = compile_format("be::int:32 le::int:32:little-endian")
    assert parser.parse(struct.pack(">i", value) + struct.pack("<i", value)) == {
        "be": value,
        "le": value,
        "binaryParserEnabled": True,
    }


@st.composite
def packed_fields(draw: st.DrawFn) -> tuple[str, bytes, dict[str, int]]:
    """Integers of random widths packed back to back, MSB first, with the format to read them."""
    widths = draw(st.lists(st.integers(1, 40), min_size=1, max_size=8))
    tokens: list[str] = []
    expected: dict[str, int] = {}
    packed = 0
    start = 0
    for number, width in enumerate(widths):
        signed = draw(st.booleans())
        low, high = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
        value = draw(st.integers(low, high))
        packed = (packed << width) | (value & ((1 << width) - 1))
        kind = "int" if signed else "uint"
        tokens.append(f"f{number}:{start // 8}:{kind}:{width}:{7 - start % 8}")
        expected[f"f{number}"] = value
        start += width
    padding = -start % 8
    payload = (packed << padding).to_bytes((start + padding) // 8, "big")
    return " ".join(tokens), payload, expected


@given(packed_fields())
def test_bit_packed_fields_read_back(case: tuple[str, bytes, dict[str, int]]) -> None:
    format_text, payload, expected = case
    assert compile_format(format_text).parse(payload) == {**expected, "binaryParserEnabled": True}
