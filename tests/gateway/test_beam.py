"""Beam's added headers, signature and wrapped body (spec §3; vectors S1-S8 from §3.3)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.beam import (
    SIGNATURE_VERSION,
    BeamIdentity,
    BeamSignatureError,
    fallback_string_to_sign,
    http_string_to_sign,
    identity_headers,
    parse_tcp_first_line,
    sign_http,
    tcp_string_to_sign,
    unwrap_payload,
    verify_http,
    verify_tcp,
)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signed(psk: str, fields: dict[str, str]) -> dict[str, str]:
    """``fields`` plus the signature headers Beam adds, signed the documented way (§3.2)."""
    headers = dict(fields)
    headers["X-Soracom-Signature-Version"] = SIGNATURE_VERSION
    headers["X-Soracom-Signature"] = sign_http(psk, fields)
    return headers


# §3.3, HTTP form. S3 is the TCP form and is tested with the TCP functions below.
HTTP_VECTORS = [
    pytest.param(
        "mysecretkey",
        {
            "x-soracom-imei": "860000012345678",
            "x-soracom-imsi": "295000012345678",
            "x-soracom-timestamp": "1445587157992",
        },
        "95c8e34d68e2bd76502c1e403108dc1bd7008964c31081d0415adb9f21a721a5",
        id="S1-docs-imei-imsi",
    ),
    pytest.param(
        "topsecret",
        {"x-soracom-imsi": "440101234567890", "x-soracom-timestamp": "1608251959862"},
        "a91b7388793953166d6433ba5fbb79c2bf16ecab7d99732233830793b5f8eb8c",
        id="S2-beamtest-imsi",
    ),
    pytest.param(
        "secret",
        {
            "x-soracom-imei": "012345678901234",
            "x-soracom-imsi": "295100000000001",
            "x-soracom-timestamp": "1443571200000",
        },
        "125d84ef000ed210da7a4de94fe601589295370c9e465982c8ddb84dcb7e779e",
        id="S4-go-imei-imsi",
    ),
    pytest.param(
        "secret",
        {"x-soracom-imsi": "295100000000001", "x-soracom-timestamp": "1443571200000"},
        "a15174afa6e4a4ffa0f9c44e6085e9b6f2b5f0cf2c3437bf46bdd9bf8514f51b",
        id="S5-go-imsi",
    ),
    pytest.param(
        "secret",
        {"x-soracom-sigfox-device-id": "FFFFFF", "x-soracom-timestamp": "1443571200000"},
        "f9e3364679192f572318101e7fea3186d01c2f751b661735875116463a2db466",
        id="S6-go-sigfox",
    ),
    pytest.param(
        "secret",
        {"x-soracom-lora-device-id": "0123456789abcdef", "x-soracom-timestamp": "1443571200000"},
        "4eed6b68e7ac8093c375ef6d2346e510ccaa08afc8292f5e613271aaa5b13a28",
        id="S7-go-lora",
    ),
    pytest.param(
        "topsecret",
        {
            "x-soracom-imei": "359675070019530",
            "x-soracom-imsi": "440103114938318",
            "x-soracom-timestamp": "1494631852102",
        },
        "10aba09ab9c52a5e738b3bf98242075fe6f3f5d4ce55d323383870f1bc72b29c",
        id="S8-nifi-imei-imsi",
    ),
]

S1_PSK = "mysecretkey"
S1_FIELDS = {
    "X-Soracom-IMEI": "860000012345678",
    "X-Soracom-IMSI": "295000012345678",
    "X-Soracom-Timestamp": "1445587157992",
}
S1_SIGNATURE = "95c8e34d68e2bd76502c1e403108dc1bd7008964c31081d0415adb9f21a721a5"
S1_HEADERS = {
    **S1_FIELDS,
    "X-Soracom-Signature-Version": "20151001",
    "X-Soracom-Signature": S1_SIGNATURE,
}
S1_NOW_MS = 1445587157992

MISMATCH = r"^signature mismatch$"

S3_PSK = "topsecret"
S3_LINE = (
    "imsi=440101234567890 timestamp=1608251959862"
    ";signature=9b7c3587a10b94453127aa614bac55ca0d953f4a98f428a086114f67120a850b"
)


# -- HTTP: the vectors ---------------------------------------------------------------------


@pytest.mark.parametrize(("psk", "fields", "expected"), HTTP_VECTORS)
def test_sign_http_reproduces_the_vectors(psk: str, fields: dict[str, str], expected: str) -> None:
    assert sign_http(psk, fields) == expected


@pytest.mark.parametrize(("psk", "fields", "expected"), HTTP_VECTORS)
def test_verify_http_accepts_the_vectors(psk: str, fields: dict[str, str], expected: str) -> None:
    headers = {
        **fields,
        "x-soracom-signature-version": "20151001",
        "x-soracom-signature": expected,
    }
    identity = verify_http(psk, headers)
    assert identity == identity_headers(fields)
    assert identity.timestamp_ms == int(fields["x-soracom-timestamp"])


@pytest.mark.parametrize(("psk", "fields", "expected"), HTTP_VECTORS)
def test_the_reference_verifier_string_agrees_on_every_vector(
    psk: str, fields: dict[str, str], expected: str
) -> None:
    # §3.5 point 1: E1's fixed list and E3's "all x-soracom-*" agree on documented fields.
    assert fallback_string_to_sign(psk, fields) == http_string_to_sign(psk, fields)


def test_the_string_to_sign_is_the_documented_concatenation() -> None:
    assert http_string_to_sign(S1_PSK, S1_HEADERS) == (
        "mysecretkey"
        "x-soracom-imei=860000012345678"
        "x-soracom-imsi=295000012345678"
        "x-soracom-timestamp=1445587157992"
    )


def test_the_fixed_order_covers_all_four_cellular_ids() -> None:
    headers = {
        "X-Soracom-Timestamp": "1",
        "X-Soracom-SIM-ID": "8942310000000000000",
        "X-Soracom-MSISDN": "819000000000",
        "X-Soracom-IMSI": "440100000000000",
        "X-Soracom-IMEI": "350000000000000",
    }
    assert http_string_to_sign("k", headers) == (
        "k"
        "x-soracom-imei=350000000000000"
        "x-soracom-imsi=440100000000000"
        "x-soracom-msisdn=819000000000"
        "x-soracom-sim-id=8942310000000000000"
        "x-soracom-timestamp=1"
    )


def test_headers_outside_the_signed_list_are_not_signed() -> None:
    extra = {
        **S1_FIELDS,
        "Content-Type": "application/json",
        "User-Agent": "SORACOM Beam",
        "X-Soracom-Operator-Id": "OP0000000000",
        "Authorization": "Bearer x",
    }
    assert sign_http(S1_PSK, extra) == S1_SIGNATURE


def test_values_are_hashed_as_the_bytes_that_were_sent() -> None:
    # A parser that decodes with surrogateescape hands us the raw bytes in disguise.
    raw = b"44010\xff"
    headers = {"x-soracom-imsi": raw.decode("utf-8", "surrogateescape")}
    assert sign_http("k", headers) == sha256_hex(b"kx-soracom-imsi=" + raw)


# -- HTTP: names, order, duplicates --------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({k.lower(): v for k, v in S1_HEADERS.items()}, id="lowercase"),
        pytest.param({k.upper(): v for k, v in S1_HEADERS.items()}, id="uppercase"),
        pytest.param(dict(reversed(S1_HEADERS.items())), id="reversed-order"),
        pytest.param(
            {
                "x-SORACOM-timestamp": S1_HEADERS["X-Soracom-Timestamp"],
                "X-Soracom-Signature": S1_SIGNATURE,
                "x-soracom-imsi": S1_HEADERS["X-Soracom-IMSI"],
                "X-SORACOM-SIGNATURE-VERSION": "20151001",
                "x-Soracom-Imei": S1_HEADERS["X-Soracom-IMEI"],
            },
            id="mixed-case-shuffled",
        ),
        pytest.param(CIMultiDict(S1_HEADERS), id="multidict"),
    ],
)
def test_header_names_are_case_insensitive_and_order_free(headers: Mapping[str, str]) -> None:
    identity = verify_http(S1_PSK, headers)
    assert identity == BeamIdentity(
        imsi="295000012345678", imei="860000012345678", timestamp_ms=1445587157992
    )


@given(st.permutations(list(S1_HEADERS.items())), st.lists(st.booleans(), min_size=5, max_size=5))
def test_any_order_and_case_verifies(items: list[tuple[str, str]], upper: list[bool]) -> None:
    headers = {(k.upper() if up else k.lower()): v for (k, v), up in zip(items, upper, strict=True)}
    assert verify_http(S1_PSK, headers).imsi == "295000012345678"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            CIMultiDict([*S1_HEADERS.items(), ("x-soracom-imsi", "440100000000000")]),
            id="multidict-second-imsi",
        ),
        pytest.param({**S1_HEADERS, "x-soracom-imsi": "440100000000000"}, id="dict-two-cases"),
        pytest.param(
            CIMultiDict([*S1_HEADERS.items(), ("X-Soracom-Signature", "0" * 64)]),
            id="second-signature",
        ),
    ],
)
def test_a_repeated_soracom_header_is_refused(headers: Mapping[str, str]) -> None:
    with pytest.raises(BeamSignatureError, match="is repeated"):
        verify_http(S1_PSK, headers)


def test_other_repeated_headers_are_not_our_business() -> None:
    headers = CIMultiDict([*S1_HEADERS.items(), ("Via", "1.1 a"), ("Via", "1.1 b")])
    assert verify_http(S1_PSK, headers).imsi == "295000012345678"


def test_identity_and_string_to_sign_take_the_first_copy_of_a_repeated_header() -> None:
    headers = CIMultiDict([*S1_FIELDS.items(), ("x-soracom-imsi", "440100000000000")])
    assert identity_headers(headers).imsi == "295000012345678"
    assert sign_http(S1_PSK, headers) == S1_SIGNATURE


# -- HTTP: refusals ------------------------------------------------------------------------


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in S1_HEADERS.items() if k != name}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param(
            without("X-Soracom-Signature-Version"),
            "^x-soracom-signature-version header is missing$",
            id="no-version",
        ),
        pytest.param(
            {**S1_HEADERS, "X-Soracom-Signature-Version": "20150901"},
            "^unsupported signature version '20150901'",
            id="legacy-version",
        ),
        pytest.param(
            {**S1_HEADERS, "X-Soracom-Signature-Version": ""},
            "^unsupported signature version ''",
            id="empty-version",
        ),
        pytest.param(
            {**S1_HEADERS, "X-Soracom-Signature-Version": " 20151001"},
            "^unsupported signature version",
            id="padded-version",
        ),
        pytest.param(
            without("X-Soracom-Signature"), "^x-soracom-signature header is missing$", id="no-sig"
        ),
        pytest.param(
            {
                "X-Soracom-Timestamp": "1445587157992",
                "X-Soracom-Signature-Version": "20151001",
                "X-Soracom-Signature": S1_SIGNATURE,
            },
            "^no x-soracom-imsi/imei/msisdn/sim-id header",
            id="no-id-header",
        ),
    ],
)
def test_verify_http_names_the_failed_check(headers: dict[str, str], message: str) -> None:
    with pytest.raises(BeamSignatureError, match=message):
        verify_http(S1_PSK, headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("X-Soracom-IMEI", "860000012345679", id="imei"),
        pytest.param("X-Soracom-IMSI", "295000012345679", id="imsi"),
        pytest.param("X-Soracom-Timestamp", "1445587157993", id="timestamp"),
        pytest.param("X-Soracom-MSISDN", "819000000000", id="added-msisdn"),
        pytest.param("X-Soracom-SIM-ID", "8942310000000000000", id="added-sim-id"),
        pytest.param("X-Soracom-Sigfox-Device-Id", "FFFFFF", id="added-sigfox-id"),
        pytest.param("X-Soracom-Signature", S1_SIGNATURE[:-1] + "6", id="signature-last-digit"),
        pytest.param("X-Soracom-Signature", S1_SIGNATURE.upper(), id="signature-uppercase"),
        pytest.param("X-Soracom-Signature", S1_SIGNATURE[:-1], id="signature-short"),
        pytest.param("X-Soracom-Signature", "", id="signature-empty"),
        pytest.param("X-Soracom-Signature", "é" * 64, id="signature-non-ascii"),
    ],
)
def test_a_tampered_field_is_a_mismatch(name: str, value: str) -> None:
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http(S1_PSK, {**S1_HEADERS, name: value})


def test_removing_a_signed_id_is_a_mismatch() -> None:
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http(S1_PSK, without("X-Soracom-IMEI"))


def test_the_wrong_key_is_a_mismatch() -> None:
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http("mysecretkeY", S1_HEADERS)


def test_values_keep_their_case() -> None:
    # S6: the Sigfox device ID is signed as sent; "ffffff" is another string.
    headers = {
        "x-soracom-sigfox-device-id": "ffffff",
        "x-soracom-timestamp": "1443571200000",
        "x-soracom-signature-version": "20151001",
        "x-soracom-signature": "f9e3364679192f572318101e7fea3186d01c2f751b661735875116463a2db466",
    }
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http("secret", headers)


@pytest.mark.parametrize(
    ("psk", "max_skew_ms", "now_ms", "error"),
    [
        pytest.param("", None, None, ValueError, id="empty-psk"),
        pytest.param(S1_PSK, -1, S1_NOW_MS, ValueError, id="negative-skew"),
        pytest.param(S1_PSK, 1000, None, TypeError, id="skew-without-clock"),
    ],
)
def test_caller_mistakes_are_not_signature_errors(
    psk: str, max_skew_ms: int | None, now_ms: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        verify_http(psk, S1_HEADERS, max_skew_ms=max_skew_ms, now_ms=now_ms)
    assert not isinstance(caught.value, BeamSignatureError)


# -- HTTP: skew ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "now_ms",
    [
        pytest.param(S1_NOW_MS, id="same-ms"),
        pytest.param(S1_NOW_MS + 5_000, id="late-at-limit"),
        pytest.param(S1_NOW_MS - 5_000, id="early-at-limit"),
    ],
)
def test_a_timestamp_within_the_skew_passes(now_ms: int) -> None:
    assert verify_http(S1_PSK, S1_HEADERS, max_skew_ms=5_000, now_ms=now_ms).imsi is not None


@pytest.mark.parametrize(
    "now_ms",
    [
        pytest.param(S1_NOW_MS + 5_001, id="too-old"),
        pytest.param(S1_NOW_MS - 5_001, id="from-the-future"),
    ],
)
def test_a_timestamp_beyond_the_skew_is_refused(now_ms: int) -> None:
    with pytest.raises(BeamSignatureError, match="more than 5000 ms"):
        verify_http(S1_PSK, S1_HEADERS, max_skew_ms=5_000, now_ms=now_ms)


def test_no_skew_check_by_default() -> None:
    # §3.4 step 8: SORACOM documents no replay window.
    assert verify_http(S1_PSK, S1_HEADERS, now_ms=S1_NOW_MS * 2).imsi is not None


@pytest.mark.parametrize(
    "timestamp",
    [pytest.param(None, id="absent"), pytest.param("soon", id="not-digits")],
)
def test_the_skew_check_needs_a_timestamp(timestamp: str | None) -> None:
    fields = {"X-Soracom-IMSI": "295000012345678"}
    if timestamp is not None:
        fields["X-Soracom-Timestamp"] = timestamp
    headers = signed(S1_PSK, fields)
    assert verify_http(S1_PSK, headers).timestamp_ms is None
    with pytest.raises(BeamSignatureError, match="timestamp is missing"):
        verify_http(S1_PSK, headers, max_skew_ms=5_000, now_ms=S1_NOW_MS)


def test_a_bad_signature_is_reported_before_the_skew() -> None:
    headers = {**S1_HEADERS, "X-Soracom-IMSI": "295000012345679"}
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http(S1_PSK, headers, max_skew_ms=0, now_ms=0)


# -- HTTP: the reference verifier's string (fallback) --------------------------------------


def e3_signed(psk: str, fields: dict[str, str]) -> dict[str, str]:
    headers = dict(fields)
    headers["X-Soracom-Signature-Version"] = SIGNATURE_VERSION
    headers["X-Soracom-Signature"] = sha256_hex(fallback_string_to_sign(psk, fields).encode())
    return headers


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"X-Soracom-Custom": "blue"}, id="custom-header"),
        pytest.param({"X-Soracom-Operator-Id": "OP0012345678"}, id="operator-id"),
        pytest.param({"X-Soracom-Aaa": "1", "X-Soracom-Zzz": "2"}, id="before-and-after"),
    ],
)
def test_fallback_accepts_the_reference_verifier_signature(extra: dict[str, str]) -> None:
    headers = e3_signed(S1_PSK, {**S1_FIELDS, **extra})
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http(S1_PSK, headers)
    identity = verify_http(S1_PSK, headers, fallback_all_headers=True)
    assert identity.imsi == "295000012345678"


def test_fallback_still_accepts_the_documented_signature() -> None:
    headers = {**S1_HEADERS, "X-Soracom-Custom": "blue"}
    assert verify_http(S1_PSK, headers, fallback_all_headers=True).imei == "860000012345678"


def test_fallback_sorts_pairs_and_skips_signature_headers() -> None:
    headers = {
        "X-Soracom-Timestamp": "1",
        "X-Soracom-Signature": "s",
        "X-Soracom-Signature-Version": SIGNATURE_VERSION,
        "X-Soracom-Custom": "c",
        "X-Soracom-IMSI": "2",
        "Host": "example.com",
    }
    assert fallback_string_to_sign("k", headers) == (
        "kx-soracom-custom=cx-soracom-imsi=2x-soracom-timestamp=1"
    )


def test_fallback_does_not_rescue_a_tampered_value() -> None:
    headers = e3_signed(S1_PSK, {**S1_FIELDS, "X-Soracom-Custom": "blue"})
    headers["X-Soracom-Custom"] = "red"
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_http(S1_PSK, headers, fallback_all_headers=True)


# -- HTTP: identity ------------------------------------------------------------------------


def test_identity_headers_reads_every_id_without_verifying() -> None:
    headers = {
        "X-Soracom-IMSI": "440100000000000",
        "X-Soracom-IMEI": "350000000000000",
        "X-Soracom-MSISDN": "819000000000",
        "X-Soracom-SIM-ID": "8942310000000000000",
        "x-soracom-lora-device-id": "0123456789abcdef",
        "x-soracom-sigfox-device-id": "FFFFFF",
        "X-Soracom-Timestamp": "1443571200000",
        "X-Soracom-Signature": "not checked",
    }
    assert identity_headers(headers) == BeamIdentity(
        imsi="440100000000000",
        imei="350000000000000",
        msisdn="819000000000",
        sim_id="8942310000000000000",
        lora_device_id="0123456789abcdef",
        sigfox_device_id="FFFFFF",
        timestamp_ms=1443571200000,
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("-1", id="negative"),
        pytest.param("1.5", id="fraction"),
        pytest.param(" 1", id="padded"),
        pytest.param("\u00b2", id="superscript-two"),
    ],
)
def test_a_timestamp_that_is_not_unix_ms_reads_as_none(raw: str) -> None:
    assert identity_headers({"X-Soracom-Timestamp": raw}).timestamp_ms is None


def test_identity_headers_of_a_plain_request_is_empty() -> None:
    assert identity_headers({"Content-Type": "text/plain"}) == BeamIdentity()


# -- TCP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(S3_LINE, id="str"),
        pytest.param(S3_LINE.encode(), id="bytes"),
        pytest.param(S3_LINE + "\n", id="lf"),
        pytest.param(S3_LINE.encode() + b"\r\n", id="crlf-bytes"),
    ],
)
def test_verify_tcp_accepts_s3(line: str | bytes) -> None:
    assert (
        tcp_string_to_sign(S3_PSK, line) == "topsecretimsi=440101234567890 timestamp=1608251959862"
    )
    assert verify_tcp(S3_PSK, line) == BeamIdentity(
        imsi="440101234567890", timestamp_ms=1608251959862
    )


def test_parse_tcp_first_line_splits_fields_and_signature() -> None:
    fields, signature = parse_tcp_first_line(S3_LINE + "\r\n")
    assert fields == {"imsi": "440101234567890", "timestamp": "1608251959862"}
    assert signature == "9b7c3587a10b94453127aa614bac55ca0d953f4a98f428a086114f67120a850b"


def test_an_unsigned_tcp_line_parses_with_an_empty_signature() -> None:
    fields, signature = parse_tcp_first_line(b"imsi=440101234567890 timestamp=1608251959862\n")
    assert fields == {"imsi": "440101234567890", "timestamp": "1608251959862"}
    assert signature == ""


def test_verify_tcp_reads_all_four_ids() -> None:
    text = "imei=350000000000000 imsi=440100000000000 msisdn=819000000000 simId=894231 timestamp=7"
    line = f"{text};signature={sha256_hex(b'k' + text.encode())}\r\n".encode()
    assert verify_tcp("k", line) == BeamIdentity(
        imsi="440100000000000",
        imei="350000000000000",
        msisdn="819000000000",
        sim_id="894231",
        timestamp_ms=7,
    )


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("", id="empty"),
        pytest.param("imsi", id="no-equals"),
        pytest.param("=440101234567890", id="no-name"),
        pytest.param("imsi=1  timestamp=2", id="double-space"),
        pytest.param(" imsi=1 timestamp=2", id="leading-space"),
        pytest.param("imsi=1 imsi=2 timestamp=3", id="repeated"),
        pytest.param(b"imsi=\xff timestamp=2", id="not-utf8"),
    ],
)
def test_a_malformed_tcp_line_is_refused(line: str | bytes) -> None:
    with pytest.raises(BeamSignatureError, match="Beam TCP first line"):
        parse_tcp_first_line(line)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(S3_LINE.replace("440101234567890", "440101234567891"), id="imsi"),
        pytest.param(S3_LINE.replace("1608251959862", "1608251959863"), id="timestamp"),
        pytest.param(S3_LINE.replace("imsi=", "imei="), id="field-name"),
        pytest.param(S3_LINE.replace(" ", "  ", 1), id="spacing"),
        # E3's spec sends this signature and expects the error reply.
        pytest.param(S3_LINE.split(";")[0] + ";signature=deadbeafcafebabe", id="beamtest-bad-sig"),
        pytest.param(S3_LINE.upper().replace("SIGNATURE=", "signature="), id="uppercase-names"),
    ],
)
def test_a_tampered_tcp_line_is_refused(line: str) -> None:
    with pytest.raises(BeamSignatureError):
        verify_tcp(S3_PSK, line)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(S3_LINE.replace("440101234567890", "440101234567891"), id="imsi"),
        pytest.param(S3_LINE.replace("1608251959862", "1608251959863"), id="timestamp"),
        pytest.param(S3_LINE[:-1] + "c", id="signature"),
    ],
)
def test_a_tampered_tcp_value_is_reported_as_a_mismatch(line: str) -> None:
    with pytest.raises(BeamSignatureError, match=MISMATCH):
        verify_tcp(S3_PSK, line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "imsi=440101234567890 timestamp=1608251959862", "has no ;signature=", id="unsigned"
        ),
        pytest.param(
            "timestamp=1608251959862;signature=" + "0" * 64,
            "^no imsi/imei/msisdn/simId field",
            id="no-id",
        ),
    ],
)
def test_verify_tcp_names_the_failed_check(line: str, message: str) -> None:
    with pytest.raises(BeamSignatureError, match=message):
        verify_tcp(S3_PSK, line)


def test_verify_tcp_checks_the_skew_when_asked() -> None:
    assert verify_tcp(S3_PSK, S3_LINE, max_skew_ms=10, now_ms=1608251959872).imsi is not None
    with pytest.raises(BeamSignatureError, match="more than 10 ms"):
        verify_tcp(S3_PSK, S3_LINE, max_skew_ms=10, now_ms=1608251959873)
    with pytest.raises(TypeError):
        verify_tcp(S3_PSK, S3_LINE, max_skew_ms=10)
    with pytest.raises(ValueError, match="pre-shared key"):
        verify_tcp("", S3_LINE)


# -- Body ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"payload":"aGVsbG8="}', b"hello", id="compact"),
        pytest.param(b'{ "payload" : "aGVsbG8=" }\n', b"hello", id="spaced"),
        pytest.param(b'{"payload":""}', b"", id="empty-payload"),
        pytest.param(b'{"payload":"AP8="}', b"\x00\xff", id="binary"),
    ],
)
def test_a_beam_wrapped_body_is_unwrapped(body: bytes, expected: bytes) -> None:
    assert unwrap_payload(body, "SORACOM Beam") == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"aGVsbG8=", id="not-json"),
        pytest.param(b"\xff\xfe{", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b'["aGVsbG8="]', id="array"),
        pytest.param(b'"aGVsbG8="', id="string"),
        pytest.param(b"{}", id="no-keys"),
        pytest.param(b'{"data":"aGVsbG8="}', id="other-key"),
        pytest.param(b'{"payload":"aGVsbG8=","imsi":"4401"}', id="extra-key"),
        pytest.param(b'{"payload":123}', id="number-payload"),
        pytest.param(b'{"payload":null}', id="null-payload"),
        pytest.param(b'{"payload":{"temp":20}}', id="object-payload"),
        pytest.param(b'{"payload":"aGVsbG8"}', id="missing-padding"),
        pytest.param(b'{"payload":"aGVs bG8="}', id="space-in-base64"),
        pytest.param(b'{"payload":"-_8="}', id="urlsafe-alphabet"),
        pytest.param(b'{"payload":"not base64!"}', id="bad-base64"),
        pytest.param('{"payload":"é"}'.encode(), id="non-ascii-base64"),
        pytest.param(b'{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="deep-nesting"),
    ],
)
def test_anything_else_is_not_unwrapped(body: bytes) -> None:
    assert unwrap_payload(body, "SORACOM Beam") is None


@pytest.mark.parametrize(
    "user_agent",
    [
        pytest.param(None, id="absent"),
        pytest.param("curl/8.5.0", id="curl"),
        pytest.param("soracom beam", id="lowercase"),
        pytest.param("SORACOM Beam/1.0", id="suffixed"),
        pytest.param("", id="empty"),
    ],
)
def test_only_beam_bodies_are_unwrapped(user_agent: str | None) -> None:
    assert unwrap_payload(b'{"payload":"aGVsbG8="}', user_agent) is None


@given(st.binary(max_size=512))
def test_payload_in_is_payload_out(raw: bytes) -> None:
    body = b'{"payload":"' + base64.b64encode(raw) + b'"}'
    assert unwrap_payload(body, "SORACOM Beam") == raw
