"""SORACOM Binary Parser: turns a device's binary payload into a JSON object.

"Notes" below is spec/notes/binary-parser-timestamps-beam-unified.md, whose section 1 this module
implements; its vectors T1-T6 are the tests' first cases.

A pure module: no I/O and no framework. :func:`compile_format` turns a format text, either a
custom format (notes 1.3) or a predefined ``@name`` (notes 1.5), into a :class:`Parser`;
:meth:`Parser.parse` turns one payload into the parsed object, which always ends with
``"binaryParserEnabled": true`` (notes 1.2). :func:`parser_for` is the cached form of
:func:`compile_format` for the ingest path, and :func:`to_json` renders a result as compact JSON
text that keeps the key order.

Every failure, of a format or of a payload, raises :class:`BinaryParserError` whose message says
exactly what is wrong. What the caller does with it (store the raw payload and log, notes 1.6) is
not this module's business.

Choices on the open points (notes 1.7), each repeated where it is implemented:

* A blank byte index after a ``bool`` (1.7.1): a blank-index ``bool`` right after another
  ``bool`` reads the same byte (Sigfox's rule, notes P19), so ``b1::bool:7 b2::bool:6`` reads two
  bits of byte 0. Every other blank index follows SORACOM's own rule, "the byte after the last byte
  read" (notes 1.3), including a non-``bool`` after a ``bool``.
* The docs' typo ``long:float:32`` (1.7.2) is rejected, with a message that names the fix.
* Operands (1.7.3) may be decimals (``*0.1``); ``/0`` is rejected when the format is compiled;
  ``float:64`` is accepted (Sigfox grammar, notes 1.3).

Other choices where the notes are silent: ``@json`` needs a JSON object (notes 1.5); a float that
is NaN or infinite prints as ``null``; ``char`` bytes must be ASCII; a field name may appear only
once; ``little-endian`` needs whole bytes; ``@sensit`` needs its 4-byte frame; bytes after the
last field are ignored.
"""

from __future__ import annotations

import functools
import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ENABLED_KEY",
    "RESERVED_NAMES_LORAWAN",
    "RESERVED_NAMES_SIGFOX",
    "BinaryParserError",
    "Parser",
    "compile_format",
    "parser_for",
    "to_json",
]

#: The key every parsed object ends with (notes 1.2: real outputs place it last).
ENABLED_KEY: Final = "binaryParserEnabled"

#: Names a LoRaWAN device's format must not use; the caller checks them, since only it knows the
#: device type (notes 1.3: the reservation matters only for LPWA devices).
RESERVED_NAMES_LORAWAN: Final = frozenset({"data", "date", "deveui", "gatewayData"})
#: Names a Sigfox device's format must not use (notes 1.3, the current list).
RESERVED_NAMES_SIGFOX: Final = frozenset(
    {
        "countryCode",
        "data",
        "device",
        "lat",
        "lng",
        "lqi",
        "operatorName",
        "rssi",
        "seqNumber",
        "snr",
        "station",
        "time",
    }
)

# Notes 1.3 "name": digits, letters and # - _ $ (letters read as ASCII letters).
_NAME = re.compile(r"[A-Za-z0-9#_$-]+")
_BYTE_INDEX = re.compile(r"[0-9]+")
_BIT_OFFSET = re.compile(r"[0-7]")
_ENDIANNESS: Final = {"big-endian": False, "little-endian": True}
# Notes 1.3 "Arithmetic operations": <op><number> pairs written back to back. Decimal operands
# are our choice (open point 1.7.3); signs, exponents and a bare "." are not numbers here.
_OPERAND = r"[0-9]+(?:\.[0-9]+)?"
_OPS = re.compile(rf"(?:[-+*/]{_OPERAND})+")
_OP = re.compile(rf"([-+*/])({_OPERAND})")
#: Notes 1.3: "up to 5 operations" per value (source P6).
MAX_OPERATIONS: Final = 5
# Integer operands are kept exact; this bound keeps every chain within float range.
_MAX_OPERAND: Final = 2**63
#: Notes 1.3 lists only these five types.
TYPES: Final = ("bool", "int", "uint", "float", "char")
# int/uint lengths are in bits (notes 1.3, P6); 64 is our upper bound, the docs give none.
_MAX_INT_BITS: Final = 64
_FLOAT_BITS: Final = {32: ">f", 64: ">d"}
# JavaScript prints an integral number without a decimal part below 1e21; so do we (notes 1.2).
_INTEGRAL_PRINT_LIMIT: Final = 1e21

_Value = bool | int | float | str | None
_Operation = tuple[str, int | float]


class BinaryParserError(ValueError):
    """A format that does not compile, or a payload its format cannot parse.

    The message names the field and says what is wrong, in terms a device developer can act on.
    """


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True, slots=True)
class _Field:
    """One custom-format field with its absolute position resolved at compile time.

    Bits are numbered from the most significant bit of byte 0, so ``start_bit`` 8 is bit 7 of
    byte 1. ``length`` is in bits for every type (a ``char:N`` field is ``8 * N`` bits).
    """

    name: str
    kind: str
    start_bit: int
    length: int
    little_endian: bool = False
    ops: tuple[_Operation, ...] = ()

    @property
    def first_byte(self) -> int:
        return self.start_bit // 8

    @property
    def last_byte(self) -> int:
        return (self.start_bit + self.length - 1) // 8

    def read(self, payload: bytes) -> _Value:
        """This field's value in ``payload``; raises if the payload is too short."""
        first, last = self.first_byte, self.last_byte
        if last >= len(payload):
            needed = f"byte {first}" if first == last else f"bytes {first}..{last}"
            raise BinaryParserError(
                f"field {self.name!r} needs {needed} but the payload has "
                f"{_plural(len(payload), 'byte')}"
            )
        chunk = payload[first : last + 1]
        if self.kind == "char":
            return _ascii(chunk, self.name, first)
        if self.little_endian:
            # Only whole bytes are read little-endian (checked at compile time, notes 1.3).
            raw = int.from_bytes(chunk, "little")
        else:
            # Most significant bit first, from start_bit on into the following bytes (notes 1.3).
            unread_tail = (last + 1) * 8 - (self.start_bit + self.length)
            raw = (int.from_bytes(chunk, "big") >> unread_tail) & ((1 << self.length) - 1)
        if self.kind == "bool":
            return raw == 1
        value: int | float
        if self.kind == "float":
            (value,) = struct.unpack(_FLOAT_BITS[self.length], raw.to_bytes(self.length // 8))
        elif self.kind == "int" and raw >> (self.length - 1):
            # Two's complement over LEN bits (notes 1.3, L: inferred from "signed integer").
            value = raw - (1 << self.length)
        else:
            value = raw
        return _json_number(_apply(value, self.ops))


def _ascii(chunk: bytes, name: str, first: int) -> str:
    # Notes 1.3: char reads "ASCII characters"; a byte above 0x7f is an error rather than a
    # guess at an encoding.
    try:
        return chunk.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BinaryParserError(
            f"field {name!r} is char but byte {first + exc.start} is "
            f"0x{chunk[exc.start]:02x}, which is not ASCII"
        ) from None


def _apply(value: int | float, ops: tuple[_Operation, ...]) -> int | float:
    """``value`` with ``ops`` applied left to right, without precedence (notes 1.3, T1).

    Integers stay exact through ``+ - *`` with integer operands; a division or a decimal operand
    switches to IEEE double arithmetic, as JSON numbers are doubles.
    """
    for op, operand in ops:
        if op == "+":
            value = value + operand
        elif op == "-":
            value = value - operand
        elif op == "*":
            value = value * operand
        else:
            value = value / operand  # operand != 0, checked at compile time
    return value


def _json_number(value: int | float) -> int | float | None:
    """``value`` as it should print in JSON: ``17`` rather than ``17.0`` (notes 1.2).

    A float that is not finite (a float field holding NaN or infinity, or an operation that
    overflows) becomes ``None``, JSON ``null``, as ``JSON.stringify`` does: JSON has no NaN.
    """
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < _INTEGRAL_PRINT_LIMIT:
        return int(value)
    return value


@dataclass(frozen=True, slots=True)
class Parser:
    """A compiled format: parses payloads into JSON-ready objects.

    ``source`` is the format text it was compiled from; ``field_names`` lists a custom format's
    keys in output order (empty for a predefined format), so a caller that knows the device type
    can check them against :data:`RESERVED_NAMES_LORAWAN` or :data:`RESERVED_NAMES_SIGFOX`.
    A parser is immutable and may be shared between tasks.
    """

    source: str
    field_names: tuple[str, ...]
    _decode: Callable[[bytes], dict[str, Any]] = field(repr=False, compare=False)

    def parse(self, payload: bytes) -> dict[str, Any]:
        """The object parsed from ``payload``, with ``"binaryParserEnabled": True`` as its last key.

        Raises :class:`BinaryParserError` when the payload does not fit the format.
        """
        result = self._decode(payload)
        # Notes 1.2: the flag comes last, after the parsed fields, even if a @json payload
        # already carried its own.
        result.pop(ENABLED_KEY, None)
        result[ENABLED_KEY] = True
        return result


# --- custom formats (notes 1.3) ---


@dataclass(slots=True)
class _Cursor:
    """Where a blank byte index starts (notes 1.3 "byteIndex", open point 1.7.1)."""

    last_byte: int = -1  # the last byte the previous field read; -1 before the first field
    after_bool: bool = False

    def next_byte(self, kind: str) -> int:
        # Our choice on open point 1.7.1: a bool right after a bool stays on that bool's byte
        # (Sigfox's rule), so flags packed into one byte need no index each. Everything else
        # takes the byte after the last byte read (SORACOM's rule); for the first field, byte 0.
        if kind == "bool" and self.after_bool:
            return self.last_byte
        return self.last_byte + 1


def _compile_field(token: str, cursor: _Cursor) -> _Field:
    parts = token.split(":")
    name = parts[0]
    if len(parts) < 3:
        if len(parts) == 2 and parts[1] in TYPES:
            # Like the docs' typo "long:float:32" (below), with no length either.
            raise BinaryParserError(
                f"field {name!r} has the type {parts[1]!r} where the byte index belongs, "
                "and no settings"
            )
        raise BinaryParserError(
            f"field definition {token!r} is not of the form name:byteIndex:type:settings"
        )
    index_text, kind, settings = parts[1], parts[2], parts[3:]
    if not name:
        raise BinaryParserError(f"field definition {token!r} has no name")
    if not _NAME.fullmatch(name):
        raise BinaryParserError(f"field name {name!r} may only use letters, digits and # - _ $")
    if name == ENABLED_KEY:
        raise BinaryParserError(f"field name {name!r} is the parser's own flag and cannot be used")
    if kind not in TYPES:
        if index_text in TYPES:
            # The docs' typo "long:float:32" (notes 1.3, open point 1.7.2): rejected, with the fix.
            raise BinaryParserError(
                f"field {name!r} has the type {index_text!r} where the byte index belongs; "
                f"write '{name}::{':'.join(parts[1:])}' to continue after the previous field"
            )
        raise BinaryParserError(
            f"unknown type {kind!r} in field {name!r} (the types are {', '.join(TYPES)})"
        )
    if any(not setting for setting in settings):
        raise BinaryParserError(f"field {name!r} has an empty setting in {token!r}")
    if index_text == "":
        byte = cursor.next_byte(kind)
    elif _BYTE_INDEX.fullmatch(index_text):
        byte = int(index_text)
    else:
        raise BinaryParserError(
            f"byte index {index_text!r} of field {name!r} must be a number from 0, or blank"
        )

    if kind == "bool":
        compiled = _compile_bool(name, byte, settings)
    elif kind == "char":
        compiled = _compile_char(name, byte, settings)
    else:
        compiled = _compile_number(name, kind, byte, settings)
    cursor.last_byte = compiled.last_byte
    cursor.after_bool = kind == "bool"
    return compiled


def _compile_bool(name: str, byte: int, settings: list[str]) -> _Field:
    # Notes 1.3: exactly one setting, the bit offset, 7 = most significant bit.
    if len(settings) != 1 or not _BIT_OFFSET.fullmatch(settings[0]):
        raise BinaryParserError(
            f"bool field {name!r} takes exactly one setting, its bit offset 0..7 "
            f"(7 = most significant bit), not {':'.join(settings) or 'none'!r}"
        )
    return _Field(name, "bool", byte * 8 + 7 - int(settings[0]), 1)


def _compile_char(name: str, byte: int, settings: list[str]) -> _Field:
    # Notes 1.3: char:N reads N bytes as a string (M-, from Sigfox's grammar).
    if len(settings) != 1 or not _BYTE_INDEX.fullmatch(settings[0]) or int(settings[0]) == 0:
        raise BinaryParserError(
            f"char field {name!r} takes exactly one setting, its length in bytes (1 or more)"
        )
    return _Field(name, "char", byte * 8, int(settings[0]) * 8)


def _compile_number(name: str, kind: str, byte: int, settings: list[str]) -> _Field:
    """An int, uint or float field: ``LEN`` then, in any order, endianness, bit offset, ops."""
    if not settings or not _BYTE_INDEX.fullmatch(settings[0]):
        raise BinaryParserError(
            f"{kind} field {name!r} needs its length in bits as its first setting"
        )
    length = int(settings[0])
    if kind == "float" and length not in _FLOAT_BITS:
        # 32 is documented; 64 comes from the Sigfox grammar (notes 1.3, open point 1.7.3).
        raise BinaryParserError(f"float field {name!r} must be 32 or 64 bits, not {length}")
    if not 1 <= length <= _MAX_INT_BITS:
        raise BinaryParserError(
            f"{kind} field {name!r} must be 1..{_MAX_INT_BITS} bits, not {length}"
        )
    little_endian: bool | None = None
    bit_offset: int | None = None
    ops: tuple[_Operation, ...] | None = None
    # Notes 1.3 "Suggested tokenizer": each later setting is recognised by its shape.
    for setting in settings[1:]:
        if setting in _ENDIANNESS:
            if little_endian is not None:
                raise BinaryParserError(f"field {name!r} gives its endianness twice")
            little_endian = _ENDIANNESS[setting]
        elif _BIT_OFFSET.fullmatch(setting):
            if bit_offset is not None:
                raise BinaryParserError(f"field {name!r} gives its bit offset twice")
            bit_offset = int(setting)
        elif setting[0] in "+-*/":
            if ops is not None:
                raise BinaryParserError(
                    f"field {name!r} gives its operations twice; write them as one setting, "
                    "e.g. '+100000/100'"
                )
            ops = _compile_ops(name, setting)
        elif "endian" in setting.lower():
            raise BinaryParserError(
                f"unknown endianness {setting!r} in field {name!r} "
                "(use 'big-endian' or 'little-endian')"
            )
        elif _BYTE_INDEX.fullmatch(setting):
            raise BinaryParserError(
                f"bit offset {setting!r} of field {name!r} must be a single digit 0..7"
            )
        else:
            raise BinaryParserError(f"unrecognised setting {setting!r} in field {name!r}")
    offset = 7 if bit_offset is None else bit_offset
    if little_endian and (length % 8 or offset != 7):
        # Notes 1.3: little-endian reverses whole bytes, so it needs LEN a multiple of 8
        # starting at a byte boundary (bit offset 7).
        raise BinaryParserError(
            f"little-endian field {name!r} must cover whole bytes: its length must be a "
            f"multiple of 8 and its bit offset 7, not {length} bits from bit {offset}"
        )
    return _Field(name, kind, byte * 8 + 7 - offset, length, bool(little_endian), ops or ())


def _compile_ops(name: str, text: str) -> tuple[_Operation, ...]:
    if not _OPS.fullmatch(text):
        raise BinaryParserError(
            f"operations {text!r} of field {name!r} must be <op><number> pairs with op one of "
            "+ - * / and an unsigned decimal number, e.g. '+100000/100'"
        )
    ops: list[_Operation] = []
    for op, operand_text in _OP.findall(text):
        operand: int | float = float(operand_text) if "." in operand_text else int(operand_text)
        if op == "/" and operand == 0:
            # Open point 1.7.3: a constant division by zero is a format error, found at once.
            raise BinaryParserError(f"field {name!r} divides by zero in {text!r}")
        if operand >= _MAX_OPERAND:
            raise BinaryParserError(f"operand {operand_text} of field {name!r} is too large")
        ops.append((op, operand))
    if len(ops) > MAX_OPERATIONS:
        raise BinaryParserError(
            f"field {name!r} has {len(ops)} arithmetic operations; at most {MAX_OPERATIONS} "
            "are allowed"
        )
    return tuple(ops)


def _compile_custom(text: str) -> Parser:
    tokens = text.split()  # notes 1.3: separated by spaces (runs of whitespace accepted)
    if not tokens:
        raise BinaryParserError("the format is empty")
    cursor = _Cursor()
    fields: list[_Field] = []
    seen: set[str] = set()
    for token in tokens:
        compiled = _compile_field(token, cursor)
        if compiled.name in seen:
            raise BinaryParserError(f"field name {compiled.name!r} is used twice")
        seen.add(compiled.name)
        fields.append(compiled)
    frozen_fields = tuple(fields)

    def decode(payload: bytes) -> dict[str, Any]:
        return {each.name: each.read(payload) for each in frozen_fields}

    return Parser(text, tuple(each.name for each in frozen_fields), decode)


# --- predefined formats (notes 1.5) ---


def _reject_json_constant(constant: str) -> None:
    raise BinaryParserError(f"@json payload holds {constant}, which is not JSON")


def _decode_json(payload: bytes) -> dict[str, Any]:
    """``@json``: the payload's JSON object, keys and values as sent (notes 1.2, 1.5).

    The payload must be UTF-8 JSON whose top-level value is an object; any other value is an
    error, since the flag :meth:`Parser.parse` appends needs an object to live in (our choice).
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BinaryParserError(
            f"@json payload is not UTF-8: byte {exc.start} is 0x{payload[exc.start]:02x}"
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_json_constant)
    except json.JSONDecodeError as exc:
        raise BinaryParserError(f"@json payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BinaryParserError(f"@json payload must be a JSON object, not {type(value).__name__}")
    return value


_SENSIT_LENGTH: Final = 4
_SENSIT_MODES: Final = (
    "Button",
    "Temperature + Humidity",
    "Light",
    "Door",
    "Move",
    "Reed switch",
)
_SENSIT_TIMEFRAMES: Final = ("10 mins", "1 hour", "6 hours", "24 hours")
_SENSIT_TYPES: Final = ("Regular, no alert", "Button call", "Alert", "New mode")
_SENSIT_LIGHT_MULTIPLIERS: Final = (1, 8, 64, 2048)


def _sensit_temperatures(msb: int, lsb: int) -> tuple[float, float]:
    celsius = (msb * 64 + lsb - 200) / 8.0
    return celsius, celsius * 1.8 + 32


def _decode_sensit(payload: bytes) -> dict[str, Any]:
    """``@sensit``: a Sens'it V2 uplink frame (notes 1.5, T6).

    The rules, key order and arithmetic are those of SORACOM's ``npm-sensit`` ``index.js``
    (notes P8), down to its double-precision results (``78.80000000000001``). That package
    answers ``null`` for bytes a short frame lacks; we require the 4-byte frame instead, and
    ignore any bytes after it.
    """
    if len(payload) < _SENSIT_LENGTH:
        raise BinaryParserError(
            f"@sensit needs a {_SENSIT_LENGTH}-byte Sens'it frame but the payload has "
            f"{_plural(len(payload), 'byte')}"
        )
    b0, b1, b2, b3 = payload[:_SENSIT_LENGTH]
    mode, timeframe, kind = b0 & 0x07, (b0 & 0x18) >> 3, (b0 & 0x60) >> 5
    temp_msb = (b1 & 0xF0) >> 4
    low_c, low_f = _sensit_temperatures(temp_msb, 0)
    result: dict[str, Any] = {
        "mode": mode,
        "modeText": _SENSIT_MODES[mode] if mode < len(_SENSIT_MODES) else "Unknown",
        "timeframe": timeframe,
        "timeframeText": _SENSIT_TIMEFRAMES[timeframe],
        "type": kind,
        "typeText": _SENSIT_TYPES[kind],
        "battery": ((b0 >> 7) * 16 + (b1 & 0x0F) + 54) / 20.0,
        "tempCLowPrecision": low_c,
        "tempFLowPrecision": low_f,
    }
    reed_switch = (b2 & 0x40) >> 6
    if mode in (0, 1, 4, 5):  # button, temperature, move and reed switch carry the fine value
        result["tempC"], result["tempF"] = _sensit_temperatures(temp_msb, b2 & 0x1F)
        result["reedSwitchState"] = reed_switch
    if mode == 0:
        result["majorVersion"], result["minorVersion"] = b3 >> 4, b3 & 0x0F
    elif mode == 1:
        result["humidity"] = b3 * 0.5
    elif mode == 2:
        result["lux"] = _SENSIT_LIGHT_MULTIPLIERS[b2 >> 6] * (b2 & 0x3F) * 0.01
    if mode in (2, 3, 4, 5):
        result["numAlerts"] = b3
    return {
        key: _json_number(value) if isinstance(value, float) else value
        for key, value in result.items()
    }


#: Predefined formats whose input layout we know. Others named in the docs (@button,
#: @soracom.button, @gpsmultiunit, @sensit.v3, @unashield) have unknown layouts (notes 1.5).
_PREDEFINED: Final[dict[str, Callable[[bytes], dict[str, Any]]]] = {
    "@json": _decode_json,
    "@sensit": _decode_sensit,
}


def compile_format(text: str) -> Parser:
    """The parser for ``text``: a custom format (notes 1.3) or a predefined ``@name`` (1.5).

    Raises :class:`BinaryParserError` for any format it cannot compile, including a predefined
    name whose input layout the emulator does not know.
    """
    stripped = text.strip()
    if stripped.startswith("@"):
        decode = _PREDEFINED.get(stripped)
        if decode is None:
            if len(stripped.split()) > 1:
                raise BinaryParserError(f"a predefined format must be used alone, not {stripped!r}")
            raise BinaryParserError(
                f"unsupported predefined format {stripped!r} (the emulator supports "
                f"{', '.join(_PREDEFINED)})"
            )
        return Parser(stripped, (), decode)
    return _compile_custom(text)


@functools.lru_cache(maxsize=256)
def parser_for(format_text: str) -> Parser:
    """:func:`compile_format`, cached: groups share a handful of formats on the ingest path.

    Errors are not cached, so an invalid format raises on every call.
    """
    return compile_format(format_text)


def to_json(obj: object) -> str:
    """``obj`` as compact JSON text (``,`` and ``:`` separators), keys in their given order.

    Non-ASCII text stays as is; a NaN or infinity raises ``ValueError`` rather than printing
    something that is not JSON.
    """
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
