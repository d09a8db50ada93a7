"""Authentication and the operator (SORACOM operationIds ``auth``, ``logout``,
``getOperator``, ``generateAuthToken``) and the middleware that checks every other call."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from harvest import errors
from harvest.api import views
from harvest.context import QUOTAS, REGISTRY, TOKEN
from harvest.domain import ApiToken
from harvest.errors import Dropped, HarvestError
from harvest.provisioning import TOKEN_TIMEOUT_DEFAULT_S, TOKEN_TIMEOUT_MAX_S
from harvest.web import Handler, as_harvest_error, json_response, read_json_object
from quotas import ratelimit
from quotas.limits import EXTENDED_PLAN, EXTENDED_RETENTION_DAYS

#: Calls that need no API key and token (OpenAPI: ``auth`` has no security requirement).
OPEN_PATHS = frozenset({"/v1/auth"})


#: Why this call's credentials were refused, for :func:`auth_middleware` to answer.
AUTH_REFUSAL = web.RequestKey("auth_refusal", HarvestError)


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/v1`` call: identify the caller (``X-Soracom-API-Key`` and ``X-Soracom-Token``,
    spec A4), count it against its per-minute budget (429 ``HEM1007`` over it, spec B9), and
    put the ``X-Soracom-Ratelimit-*`` headers on every answer, errors included (spec A2:
    SORACOM sends them on every response).

    The budget is the operator's; a call without a live token (``/auth`` itself, or a refused
    one) counts against its peer address. A refused token is answered by
    :func:`auth_middleware`, inside the fault rules, so a maintenance window answers ``503``
    to every call, as the real service's front would.
    """
    token: ApiToken | None = None
    if request.path not in OPEN_PATHS:
        try:
            token = request.config_dict[REGISTRY].check_token(
                request.headers.get("X-Soracom-API-Key"), request.headers.get("X-Soracom-Token")
            )
            request[TOKEN] = token
        except HarvestError as error:
            request[AUTH_REFUSAL] = error
    key = token.operator_id if token is not None else f"peer {request.remote}"
    limiter = request.config_dict[QUOTAS].limiter
    decision = limiter.api_call(key)
    limit_headers = ratelimit.headers(decision)
    try:
        if not decision.allowed:
            raise HarvestError(
                errors.API_RATE_LIMITED,
                f"Too many API calls this minute; retry in {decision.seconds_before_refresh} s.",
            )
        # One turn of the loop while in flight, so calls of one operator that arrived together
        # overlap even when the handler itself never waits (spec B9).
        await asyncio.sleep(0)
        answer = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(limit_headers)
            raise
        raise as_harvest_error(exc, request).with_headers(limit_headers) from None
    except (asyncio.CancelledError, ConnectionResetError, Dropped):
        raise
    except Exception as exc:
        raise as_harvest_error(exc, request).with_headers(limit_headers) from None
    finally:
        limiter.api_done(key)
    answer.headers.update(limit_headers)
    return answer


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 ``AUM0001`` (or ``AUM0002``) unless the call is open or its token is live."""
    refusal = request.get(AUTH_REFUSAL)
    if refusal is not None:
        raise refusal
    return await handler(request)


def _timeout(body: dict[str, Any]) -> int:
    value = body.get("tokenTimeoutSeconds", TOKEN_TIMEOUT_DEFAULT_S)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not (1 <= value <= TOKEN_TIMEOUT_MAX_S)
    ):
        raise HarvestError(
            errors.INVALID_BODY,
            f"tokenTimeoutSeconds must be an integer from 1 to {TOKEN_TIMEOUT_MAX_S}.",
        )
    return value


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise HarvestError(errors.INVALID_BODY, f"{name} must be a string.")
    return value


async def auth(request: web.Request) -> web.Response:
    """``POST /auth`` with an auth key, or root email and password (SAM users: not emulated)."""
    registry = request.config_dict[REGISTRY]
    body = await read_json_object(request)
    timeout = _timeout(body)
    key_id, key = _text(body, "authKeyId"), _text(body, "authKey")
    email, password = _text(body, "email"), _text(body, "password")
    if key_id is not None and key is not None:
        operator_id = registry.authenticate_key(key_id, key)
    elif email is not None and password is not None:
        operator_id = registry.authenticate_root(email, password)
    else:
        operator_id = None
    if operator_id is None:
        raise HarvestError(errors.INVALID_CREDENTIALS)
    token = await registry.issue_token(operator_id, timeout)
    return json_response(
        {"apiKey": token.api_key, "operatorId": token.operator_id, "token": token.token}
    )


async def logout(request: web.Request) -> web.Response:
    """``POST /auth/logout``: the API key and token of this call stop working."""
    await request.config_dict[REGISTRY].revoke(request[TOKEN])
    return web.Response(status=204)


def own_operator(request: web.Request) -> str:
    """The path's operator id, which must be the caller's own (400 otherwise, as SORACOM)."""
    operator_id = request.match_info["operator_id"]
    if operator_id != request[TOKEN].operator_id:
        raise HarvestError(errors.INVALID_OPERATOR_ID)
    return operator_id


async def get_operator(request: web.Request) -> web.Response:
    operator = request.config_dict[REGISTRY].operator(own_operator(request))
    if operator is None:
        raise HarvestError(errors.INVALID_OPERATOR_ID)
    return json_response(views.operator(operator))


async def generate_auth_token(request: web.Request) -> web.Response:
    """``POST /operators/{id}/token``: a new token for the same API key. The body is required
    (OpenAPI ``generateAuthToken``); ``{}`` takes the default lifetime."""
    operator_id = own_operator(request)
    body = await read_json_object(request)
    token = await request.config_dict[REGISTRY].issue_token(
        operator_id, _timeout(body), api_key=request[TOKEN].api_key
    )
    return json_response({"token": token.token})


#: ``addOperatorContract`` contract names (OpenAPI enum).
CONTRACT_NAMES = ("api_audit_log", "harvest", "napter", "support")


async def add_operator_contract(request: web.Request) -> web.Response:
    """``POST /operators/{id}/contracts``; ``harvest`` takes only ``{"plan": "extended",
    "ttl": 731}`` (OpenAPI ``ContractDetailOfHarvest``) and extends retention to 731 days."""
    operator_id = own_operator(request)
    body = await read_json_object(request)
    name = body.get("contractName")
    if name not in CONTRACT_NAMES:
        raise HarvestError(
            errors.INVALID_BODY, f"contractName must be one of {', '.join(CONTRACT_NAMES)}."
        )
    # Absent is no detail; anything else must be the object the document declares (a falsy
    # [], 0, "" or null once passed as {}).
    detail = body.get("contractDetail", {})
    if not isinstance(detail, dict):
        raise HarvestError(errors.INVALID_BODY, "contractDetail must be an object.")
    if name == "harvest" and (
        detail.get("plan") != EXTENDED_PLAN or detail.get("ttl") != EXTENDED_RETENTION_DAYS
    ):
        raise HarvestError(
            errors.INVALID_BODY,
            f'The harvest contract takes only {{"plan": "{EXTENDED_PLAN}", '
            f'"ttl": {EXTENDED_RETENTION_DAYS}}}.',
        )
    await request.config_dict[REGISTRY].set_contract(operator_id, name, detail)
    # contractDetail is left out of the answer: SORACOM's document declares it as a oneOf of
    # ContractDetailOfHarvest and ContractDetailOfSupport, and every object matches both, so
    # no answer that carries it can validate.
    return json_response({"contractName": name})


async def delete_operator_contract(request: web.Request) -> web.Response:
    operator_id = own_operator(request)
    name = request.match_info["contract_name"]
    if name not in CONTRACT_NAMES:
        raise HarvestError(
            errors.INVALID_PARAMETER, f"contract_name must be one of {', '.join(CONTRACT_NAMES)}."
        )
    await request.config_dict[REGISTRY].delete_contract(operator_id, name)
    return web.Response(status=204)
