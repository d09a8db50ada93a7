"""Authentication and the operator: ``POST /v1/auth``, tokens, logout, ``/v1/operators/{id}``
(spec A4, notes real-service.md sections 4 and 7)."""

from __future__ import annotations

from typing import Any

import pytest

from harvest import errors
from tests.conftest import Emulator
from tests.harvest.api_helpers import DEFAULT_OPERATOR, NOW, advance, expect_error, set_clock
from tests.support.clients import ApiClient, Reply

KEY = {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"}
ROOT = {"email": "emulator@example.com", "password": "emulator"}


async def auth(emulator: Emulator, body: Any) -> Reply:
    return await emulator.api_client().call("POST", "/v1/auth", json_body=body)


async def logged_in(emulator: Emulator, body: dict[str, Any]) -> ApiClient:
    reply = await auth(emulator, body)
    assert reply.status == 200, reply.raw
    client = emulator.api_client()
    client.api_key, client.token = reply.json["apiKey"], reply.json["token"]
    client.operator_id = reply.json["operatorId"]
    return client


async def works(client: ApiClient) -> bool:
    """Whether the client's key and token are accepted (401 ``AUM0001`` otherwise)."""
    reply = await client.get(f"/v1/operators/{client.operator_id}")
    if reply.status == 401:
        expect_error(reply, errors.TOKEN_REQUIRED)
        return False
    assert reply.status == 200, reply.raw
    return True


@pytest.fixture
async def frozen(emulator: Emulator) -> Emulator:
    """The emulator with its clock frozen at ``NOW``: token lifetimes are exact."""
    await set_clock(emulator, NOW)
    return emulator


# --- POST /v1/auth ---------------------------------------------------------------------------
@pytest.mark.parametrize("body", [pytest.param(KEY, id="auth-key"), pytest.param(ROOT, id="root")])
async def test_auth_answers_an_api_key_and_a_token_that_work(
    emulator: Emulator, body: dict[str, Any]
) -> None:
    reply = await auth(emulator, body)
    assert reply.status == 200
    assert set(reply.json) >= {"apiKey", "operatorId", "token"}
    assert reply.json["operatorId"] == DEFAULT_OPERATOR
    assert reply.json["apiKey"].startswith("api-")
    assert reply.json["token"]
    assert await works(await logged_in(emulator, body))


async def test_every_login_gets_its_own_key_and_token(emulator: Emulator) -> None:
    first, second = await auth(emulator, KEY), await auth(emulator, KEY)
    assert first.json["token"] != second.json["token"]
    assert first.json["apiKey"] != second.json["apiKey"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**KEY, "authKey": "secret-wrong"}, id="wrong-auth-key"),
        pytest.param({**KEY, "authKeyId": "keyId-unknown"}, id="unknown-auth-key-id"),
        pytest.param({**ROOT, "password": "wrong"}, id="wrong-password"),
        pytest.param({**ROOT, "email": "nobody@example.com"}, id="unknown-email"),
        pytest.param({"authKeyId": KEY["authKeyId"], "password": "emulator"}, id="mixed-forms"),
        pytest.param({"authKeyId": KEY["authKeyId"]}, id="auth-key-id-alone"),
        pytest.param({"email": ROOT["email"]}, id="email-alone"),
        pytest.param({}, id="nothing"),
        pytest.param(
            {"operatorId": DEFAULT_OPERATOR, "userName": "SORACOMAPI", "password": "emulator"},
            id="sam-user",
        ),
    ],
)
async def test_wrong_or_unsupported_credentials_are_401_aum0002(
    emulator: Emulator, body: dict[str, Any]
) -> None:
    reply = await auth(emulator, body)
    expect_error(reply, errors.INVALID_CREDENTIALS)
    assert reply.json["message"] == "Invalid username/password supplied."


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b'[{"authKeyId": "x"}]', id="array"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"authKeyId": 1, "authKey": "x"}', id="key-id-not-a-string"),
        pytest.param(b'{"email": "a@b.c", "password": ["x"]}', id="password-not-a-string"),
        # a lone UTF-16 surrogate is not text: refused as a bad body, like any other
        pytest.param(b'{"authKeyId": "k", "authKey": "\\ud800"}', id="lone-surrogate-auth-key"),
        pytest.param(b'{"email": "a@b.c", "password": "x\\udfff"}', id="lone-surrogate-password"),
    ],
)
async def test_a_malformed_auth_body_is_400(emulator: Emulator, body: bytes) -> None:
    reply = await emulator.api_client().call(
        "POST", "/v1/auth", data=body, headers={"Content-Type": "application/json"}
    )
    expect_error(reply, errors.INVALID_BODY)


@pytest.mark.settings(
    auth_key_id="keyId-custom",
    auth_key="secret-custom",
    email="custom@example.com",
    password="hunter2",
    operator_id="OP0000000042",
)
async def test_provisioned_credentials_come_from_the_settings(emulator: Emulator) -> None:
    for body in (
        {"authKeyId": "keyId-custom", "authKey": "secret-custom"},
        {"email": "custom@example.com", "password": "hunter2"},
    ):
        reply = await auth(emulator, body)
        assert reply.status == 200, reply.raw
        assert reply.json["operatorId"] == "OP0000000042"
    for body in (KEY, ROOT):
        expect_error(await auth(emulator, body), errors.INVALID_CREDENTIALS)


async def test_a_second_operator_logs_in_as_itself(emulator: Emulator) -> None:
    other = await emulator.new_operator(email="second@example.com", password="pw-2")
    assert other.operator_id not in (None, DEFAULT_OPERATOR)
    root = await auth(emulator, {"email": "second@example.com", "password": "pw-2"})
    assert root.status == 200
    assert root.json["operatorId"] == other.operator_id
    expect_error(
        await auth(emulator, {"email": "second@example.com", "password": "emulator"}),
        errors.INVALID_CREDENTIALS,
    )


# --- tokenTimeoutSeconds ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "lifetime_s"),
    [
        pytest.param(None, 86_400, id="default-86400"),
        pytest.param(172_800, 172_800, id="maximum-172800"),
        pytest.param(1, 1, id="minimum-1"),
        pytest.param(60, 60, id="sixty"),
    ],
)
async def test_a_token_lives_exactly_token_timeout_seconds_on_the_emulator_clock(
    frozen: Emulator, seconds: int | None, lifetime_s: int
) -> None:
    body = dict(KEY) if seconds is None else {**KEY, "tokenTimeoutSeconds": seconds}
    client = await logged_in(frozen, body)
    await advance(frozen, lifetime_s - 0.001)
    assert await works(client)
    await advance(frozen, 0.001)
    assert not await works(client)


async def test_an_expired_token_says_so(frozen: Emulator) -> None:
    client = await logged_in(frozen, {**KEY, "tokenTimeoutSeconds": 10})
    await advance(frozen, 10)
    reply = await client.get("/v1/subscribers")
    expect_error(reply, errors.TOKEN_REQUIRED, "expired")


async def test_setting_the_clock_past_the_expiry_ends_the_token(frozen: Emulator) -> None:
    client = await logged_in(frozen, KEY)
    await set_clock(frozen, NOW + 86_400_000 - 1)
    assert await works(client)
    await set_clock(frozen, NOW + 86_400_000 + 5_000, frozen=False)
    assert not await works(client)
    # Logging in again at the new time gives a token that works.
    assert await works(await logged_in(frozen, KEY))


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(0, id="zero"),
        pytest.param(-1, id="negative"),
        pytest.param(172_801, id="above-maximum"),
        pytest.param(10**12, id="huge"),
        pytest.param(1.5, id="fraction"),
        pytest.param(60.0, id="float"),
        pytest.param("60", id="string"),
        pytest.param(True, id="boolean"),
        pytest.param([60], id="array"),
    ],
)
async def test_a_bad_token_timeout_is_400(emulator: Emulator, seconds: Any) -> None:
    reply = await auth(emulator, {**KEY, "tokenTimeoutSeconds": seconds})
    expect_error(reply, errors.INVALID_BODY, "tokenTimeoutSeconds", "172800")


# --- the token on every other call -----------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="neither"),
        pytest.param({"X-Soracom-API-Key": "KEY"}, id="api-key-only"),
        pytest.param({"X-Soracom-Token": "TOKEN"}, id="token-only"),
        pytest.param({"X-Soracom-API-Key": "KEY", "X-Soracom-Token": "forged"}, id="bad-token"),
        pytest.param({"X-Soracom-API-Key": "api-other", "X-Soracom-Token": "TOKEN"}, id="bad-key"),
        pytest.param({"X-Soracom-API-Key": "", "X-Soracom-Token": ""}, id="empty"),
        pytest.param({"X-Soracom-API-Key": "api-é", "X-Soracom-Token": "TOKEN"}, id="latin-1-key"),
        pytest.param({"X-Soracom-API-Key": "api-日本", "X-Soracom-Token": "TOKEN"}, id="utf-8-key"),
        pytest.param({"X-Soracom-API-Key": "KEY", "X-Soracom-Token": "TOKENé"}, id="latin-1-token"),
    ],
)
async def test_calls_without_a_valid_key_and_token_are_401_aum0001(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    api = await emulator.api()
    assert api.api_key is not None
    assert api.token is not None
    sent = {
        name: value.replace("KEY", api.api_key).replace("TOKEN", api.token)
        for name, value in headers.items()
    }
    before = len((await api.get("/v1/groups")).json)
    for method, path in (
        ("GET", "/v1/subscribers"),
        ("GET", f"/v1/operators/{DEFAULT_OPERATOR}"),
        ("POST", "/v1/auth/logout"),
        ("POST", "/v1/groups"),
    ):
        reply = await api.call(method, path, headers=sent, authenticated=False)
        assert reply.status == 401, (method, path, reply.raw)
        expect_error(reply, errors.TOKEN_REQUIRED)
    # Nothing happened: the refused calls created nothing and logged nobody out.
    assert len((await api.get("/v1/groups")).json) == before
    assert await works(api)


async def test_the_token_of_one_login_does_not_pair_with_the_key_of_another(
    emulator: Emulator,
) -> None:
    first, second = await emulator.api(), await emulator.api()
    assert first.api_key is not None
    assert second.token is not None
    reply = await first.call(
        "GET",
        "/v1/subscribers",
        headers={"X-Soracom-API-Key": first.api_key, "X-Soracom-Token": second.token},
        authenticated=False,
    )
    expect_error(reply, errors.TOKEN_REQUIRED)


# --- logout ----------------------------------------------------------------------------------
async def test_logout_is_204_and_only_that_token_stops_working(emulator: Emulator) -> None:
    leaving, staying = await emulator.api(), await emulator.api()
    reply = await leaving.call("POST", "/v1/auth/logout")
    assert (reply.status, reply.raw) == (204, b"")
    assert not await works(leaving)
    expect_error(await leaving.call("POST", "/v1/auth/logout"), errors.TOKEN_REQUIRED)
    assert await works(staying)


# --- POST /v1/operators/{id}/token -----------------------------------------------------------
async def test_generate_token_gives_a_new_token_for_the_same_api_key(emulator: Emulator) -> None:
    api = await emulator.api()
    reply = await api.call("POST", f"/v1/operators/{api.operator_id}/token", json_body={})
    assert reply.status == 200
    assert set(reply.json) == {"token"}
    new = emulator.api_client()
    new.api_key, new.token, new.operator_id = api.api_key, reply.json["token"], api.operator_id
    assert new.token != api.token
    assert await works(new)
    assert await works(api)
    # Logging the new token out leaves the old one working.
    assert (await new.call("POST", "/v1/auth/logout")).status == 204
    assert not await works(new)
    assert await works(api)


async def test_generate_token_needs_a_body(emulator: Emulator) -> None:
    # SORACOM's document marks the generateAuthToken body ``required: true``.
    api = await emulator.api()
    reply = await api.call("POST", f"/v1/operators/{api.operator_id}/token")
    expect_error(reply, errors.INVALID_BODY, "needs a JSON body")


async def test_generate_token_with_an_empty_body_uses_the_default_lifetime(
    frozen: Emulator,
) -> None:
    api = await frozen.api()
    reply = await api.call("POST", f"/v1/operators/{api.operator_id}/token", json_body={})
    assert reply.status == 200
    new = frozen.api_client()
    new.api_key, new.token, new.operator_id = api.api_key, reply.json["token"], api.operator_id
    await advance(frozen, 86_399)
    assert await works(new)
    await advance(frozen, 1)
    assert not await works(new)


async def test_generate_token_honours_token_timeout_seconds(frozen: Emulator) -> None:
    api = await frozen.api()
    reply = await api.call(
        "POST", f"/v1/operators/{api.operator_id}/token", json_body={"tokenTimeoutSeconds": 30}
    )
    assert reply.status == 200
    new = frozen.api_client()
    new.api_key, new.token, new.operator_id = api.api_key, reply.json["token"], api.operator_id
    await advance(frozen, 29)
    assert await works(new)
    await advance(frozen, 1)
    assert not await works(new)
    assert await works(api)


@pytest.mark.parametrize(
    "seconds", [pytest.param(0, id="zero"), pytest.param(172_801, id="too-big"), "x"]
)
async def test_generate_token_refuses_a_bad_timeout(emulator: Emulator, seconds: Any) -> None:
    api = await emulator.api()
    reply = await api.call(
        "POST",
        f"/v1/operators/{api.operator_id}/token",
        json_body={"tokenTimeoutSeconds": seconds},
    )
    expect_error(reply, errors.INVALID_BODY, "tokenTimeoutSeconds")


@pytest.mark.parametrize(
    "operator_id", [pytest.param("OP9999999999", id="unknown"), pytest.param("x", id="garbage")]
)
async def test_generate_token_for_another_operator_id_is_400(
    emulator: Emulator, operator_id: str
) -> None:
    api = await emulator.api()
    reply = await api.call("POST", f"/v1/operators/{operator_id}/token", json_body={})
    expect_error(reply, errors.INVALID_OPERATOR_ID)


# --- GET /v1/operators/{id} ------------------------------------------------------------------
async def test_get_own_operator(emulator: Emulator) -> None:
    api = await emulator.api()
    reply = await api.get(f"/v1/operators/{DEFAULT_OPERATOR}")
    assert reply.status == 200
    body = reply.json
    assert body["operatorId"] == body["rootOperatorId"] == DEFAULT_OPERATOR
    assert body["email"] == "emulator@example.com"
    assert "password" not in str(body).lower()


async def test_get_operator_of_the_second_operator(emulator: Emulator) -> None:
    other = await emulator.new_operator(email="two@example.com")
    reply = await other.get(f"/v1/operators/{other.operator_id}")
    assert reply.status == 200
    assert (reply.json["operatorId"], reply.json["email"]) == (other.operator_id, "two@example.com")


@pytest.mark.parametrize(
    "operator_id",
    [pytest.param("OP9999999999", id="unknown"), pytest.param("op0000000000", id="lower-case")],
)
async def test_get_another_operator_id_is_400(emulator: Emulator, operator_id: str) -> None:
    api = await emulator.api()
    reply = await api.get(f"/v1/operators/{operator_id}")
    expect_error(reply, errors.INVALID_OPERATOR_ID)
