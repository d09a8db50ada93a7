"""The emulator's own control plane under ``/_emulator`` (not part of SORACOM's API).

Tests use it to reach any state quickly: reset, SIM and operator provisioning, and the clock.
It is on by default; a setting turns it off or makes it require ``X-Emulator-Token``.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import secrets
from decimal import Decimal
from typing import Any

from aiohttp import web

from harvest import errors, linkcontrol, middleware, requestlog, wire
from harvest.api import views
from harvest.clock import ClockState
from harvest.context import (
    CLOCK,
    LISTENERS,
    QUOTAS,
    REGISTRY,
    SETTINGS,
    STATEFUL,
    STORE,
)
from harvest.domain import ResourceType, Sim, SimStatus, normalise_address
from harvest.errors import HarvestError
from harvest.provisioning import TOKEN_TIMEOUT_DEFAULT_S, TOKEN_TIMEOUT_MAX_S, NewSim
from harvest.snapshot import handlers as snapshot_handlers
from harvest.storage.base import DeleteResourceData, UsageKind
from harvest.web import Handler, json_response, read_json, read_json_object
from quotas.calendar import utc_day
from quotas.housekeeping import HOUSEKEEPING

TOKEN_HEADER = wire.CONTROL_TOKEN_HEADER
HEALTH_PATH = "/_emulator/health"


@web.middleware
async def control_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """404 when the control plane is off; 401 without the configured token.

    Health stays open either way: container health checks and load balancers call it.
    """
    if request.path.startswith(HEALTH_PATH):
        return await handler(request)
    authorize(request)
    return await handler(request)


def authorize(request: web.Request) -> None:
    """404 when the control plane is off; 401 without the configured token. The web console's
    stream (harvest/console) is held to the same rule."""
    settings = request.config_dict[SETTINGS]
    if not settings.control:
        raise HarvestError(errors.CONTROL_DISABLED)
    if settings.control_token:
        given = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), settings.control_token.encode()):
            raise HarvestError(errors.CONTROL_TOKEN_REQUIRED)


def _invalid(message: str) -> HarvestError:
    return HarvestError(errors.INVALID_BODY, message)


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{name} must be a string.")
    return value


def _number(body: dict[str, Any], name: str) -> int | float:
    value = body.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _invalid(f"{name} must be a number.")
    return value


async def health(request: web.Request) -> web.Response:
    """Readiness: 200 once every listener is up, 503 while starting or shutting down, with
    where each listener is. The process is live whenever it answers at all (``/health/live``)."""
    listeners = request.config_dict[LISTENERS]
    status = "draining" if listeners.draining else "ok" if listeners.ready else "starting"
    body = {
        "status": status,
        "live": True,
        "ready": listeners.ready,
        "listeners": listeners.addresses,
        "store": request.config_dict[STORE].stats().kind,
    }
    return json_response(body, status=200 if listeners.ready else 503)


async def health_live(request: web.Request) -> web.Response:
    """Liveness: 200 while the process answers (even when starting or draining)."""
    return json_response({"live": True})


async def reset(request: web.Request) -> web.Response:
    """Everything back to first start, or ``{"imsi": ...}``: that SIM's data only."""
    body = await read_json_object(request, required=False)
    registry = request.config_dict[REGISTRY]
    imsi = _optional_str(body, "imsi")
    if set(body) - {"imsi"}:
        raise _invalid(f"Unknown field(s): {', '.join(sorted(set(body) - {'imsi'}))}.")
    if imsi is None:
        for service in request.config_dict[STATEFUL]:  # each back as on a first start
            outcome = service.reset()
            if inspect.isawaitable(outcome):
                await outcome
        return json_response({"reset": "all"})
    sim = next((s for s in registry.all_sims() if s.imsi == imsi), None)
    if sim is None:
        raise HarvestError(errors.NOT_FOUND, f"No such SIM: {imsi}")
    await request.config_dict[STORE].apply(
        [DeleteResourceData(sim.operator_id, ResourceType.SUBSCRIBER, imsi)]
    )
    return json_response({"reset": "sim", "imsi": imsi})


_SIM_FIELDS = {"imsi", "groupId", "status", "sessionAddress", "operatorId", "tags"}


def sim_view(sim: Sim, writes_today: int | None = None) -> dict[str, Any]:
    view = views.subscriber(sim)
    view["sessionAddress"] = sim.session_address
    view["barred"] = sim.barred
    if writes_today is not None:
        view["writesToday"] = writes_today
    return view


#: SIMs one ``POST /_emulator/sims`` may create (an array body): a fleet in chunks.
MAX_SIMS_PER_CALL = 10_000


async def create_sim(request: web.Request) -> web.Response:
    """Provision a SIM; unset fields get defaults (next IMSI, own loopback address, the
    operator's first Harvest-enabled group, status ``ready``). ``"groupId": null`` means none.

    An array of such objects provisions them all in one commit (at most
    :data:`MAX_SIMS_PER_CALL`), all or none, and answers the array; with ``?existing=keep`` an
    IMSI that exists is answered as it is instead of ``409``."""
    registry = request.config_dict[REGISTRY]
    if (await request.read()).lstrip().startswith(b"["):
        items = await read_json(request)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise _invalid("The body must be a JSON object or an array of objects.")
        if not 1 <= len(items) <= MAX_SIMS_PER_CALL:
            raise _invalid(f"An array of 1 to {MAX_SIMS_PER_CALL} SIMs is expected.")
        keep = request.query.get("existing") == "keep"
        sims = await registry.create_sims(
            [_new_sim(request, item) for item in items], keep_existing=keep
        )
        return json_response([sim_view(sim) for sim in sims], status=201)
    body = await read_json_object(request, required=False)
    (sim,) = await registry.create_sims([_new_sim(request, body)])
    return json_response(sim_view(sim), status=201)


def _new_sim(request: web.Request, body: dict[str, Any]) -> NewSim:
    """One SIM of a ``POST /_emulator/sims`` body, checked."""
    unknown = set(body) - _SIM_FIELDS
    if unknown:
        raise _invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    registry = request.config_dict[REGISTRY]
    operator_id = _optional_str(body, "operatorId") or request.config_dict[SETTINGS].operator_id
    imsi = _optional_str(body, "imsi")
    if imsi is not None and not wire.is_imsi(imsi):
        raise _invalid("imsi must be 6 to 15 digits.")
    status = SimStatus.READY
    raw_status = _optional_str(body, "status")
    if raw_status is not None:
        try:
            status = SimStatus(raw_status)
        except ValueError:
            raise _invalid(
                f"status must be one of {', '.join(s.value for s in SimStatus)}."
            ) from None
    address = _optional_str(body, "sessionAddress")
    if address is not None:
        try:
            address = normalise_address(address)
            ipaddress.ip_address(address)
        except ValueError:
            raise _invalid(f"sessionAddress {address!r} is not an IP address.") from None
    if "groupId" in body:
        group_id = _optional_str(body, "groupId")
    else:
        default = registry.default_group(operator_id)
        group_id = None if default is None else default.group_id
    tags = body.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise _invalid("tags must be an object of strings.")
    return NewSim(operator_id, imsi, group_id, status, address, tags)


def _any_sim(request: web.Request) -> Sim:
    """The SIM of the path's IMSI, whichever operator owns it (the control plane sees all)."""
    imsi = request.match_info["imsi"]
    sim = request.config_dict[REGISTRY].sim_by_imsi(imsi)
    if sim is None:
        raise HarvestError(errors.NOT_FOUND, f"No such SIM: {imsi}")
    return sim


async def get_sim(request: web.Request) -> web.Response:
    """A SIM with its session address and today's write count (UTC day, emulator clock)."""
    sim = _any_sim(request)
    imsi = sim.imsi
    day = utc_day(request.config_dict[CLOCK].now_ms())
    writes = await request.config_dict[STORE].usage_count(
        sim.operator_id, imsi, day, UsageKind.WRITE
    )
    return json_response(sim_view(sim, writes))


def _barring(barred: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        """Bar or unbar the SIM at once (logging-service-terms 11.7)."""
        sim = _any_sim(request)
        updated = await request.config_dict[REGISTRY].update_sim(
            sim.operator_id, sim.imsi, barred=barred
        )
        return json_response(sim_view(updated))

    return handler


block_sim = _barring(True)
unblock_sim = _barring(False)


_OPERATOR_FIELDS = {"operatorId", "email", "password", "authKeyId", "authKey"}


async def create_operator(request: web.Request) -> web.Response:
    """A second (third, ...) operator with its own credentials, to test isolation; answered
    once, with a random password and auth key where none were given."""
    body = await read_json_object(request, required=False)
    unknown = set(body) - _OPERATOR_FIELDS
    if unknown:
        raise _invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    operator_id = _optional_str(body, "operatorId")
    if operator_id is not None and not (operator_id.startswith("OP") and len(operator_id) > 2):
        raise _invalid("operatorId must start with OP.")
    # No shared default: a password nobody chose is random, and this answer is the only place
    # it is ever shown (issue 9, item 8).
    password = _optional_str(body, "password") or secrets.token_urlsafe(16)
    operator, key_id, key = await request.config_dict[REGISTRY].create_operator(
        operator_id=operator_id,
        email=_optional_str(body, "email"),
        password=password,
        auth_key_id=_optional_str(body, "authKeyId"),
        auth_key=_optional_str(body, "authKey"),
    )
    return json_response(
        {
            "operatorId": operator.operator_id,
            "email": operator.email,
            "password": password,
            "authKeyId": key_id,
            "authKey": key,
        },
        status=201,
    )


async def list_operators(request: web.Request) -> web.Response:
    """Every operator, oldest first: id and root email (no secrets)."""
    return json_response(
        [
            {"operatorId": op.operator_id, "email": op.email}
            for op in request.config_dict[REGISTRY].operators()
        ]
    )


async def issue_operator_token(request: web.Request) -> web.Response:
    """An API key and token for the operator, as ``POST /v1/auth`` would give its root user:
    how the web console (and a test) gets a ``/v1`` session without knowing a password.
    Optional ``{"tokenTimeoutSeconds": n}``."""
    operator_id = _operator(request)
    body = await read_json_object(request, required=False)
    if set(body) - {"tokenTimeoutSeconds"}:
        raise _invalid('The body may hold only "tokenTimeoutSeconds".')
    timeout = body.get("tokenTimeoutSeconds", TOKEN_TIMEOUT_DEFAULT_S)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise _invalid("tokenTimeoutSeconds must be a whole number.")
    if not 1 <= timeout <= TOKEN_TIMEOUT_MAX_S:
        raise _invalid(f"tokenTimeoutSeconds must be from 1 to {TOKEN_TIMEOUT_MAX_S}.")
    token = await request.config_dict[REGISTRY].issue_token(operator_id, timeout)
    return json_response(
        {"apiKey": token.api_key, "operatorId": token.operator_id, "token": token.token},
        status=201,
    )


async def list_sims(request: web.Request) -> web.Response:
    """``?operatorId=``: the operator's SIMs (default: the default operator's) as
    ``GET /sims/{imsi}`` shows each, with today's write count."""
    registry = request.config_dict[REGISTRY]
    operator_id = request.query.get("operatorId") or request.config_dict[SETTINGS].operator_id
    if registry.operator(operator_id) is None:
        raise HarvestError(errors.NOT_FOUND, f"No such operator: {operator_id}")
    day = utc_day(request.config_dict[CLOCK].now_ms())
    store = request.config_dict[STORE]
    return json_response(
        [
            sim_view(sim, await store.usage_count(operator_id, sim.imsi, day, UsageKind.WRITE))
            for sim in registry.sims(operator_id)
        ]
    )


def _clock_view(request: web.Request, state: ClockState | None = None) -> web.Response:
    """The clock; after a change, the instant it was set to (a running clock has moved on
    by the time the housekeeping that the change set off has settled)."""
    state = state or request.config_dict[CLOCK].state()
    return json_response(
        {"now": state.now_ms, "frozen": state.frozen, "iso": views.iso_time(state.now_ms)}
    )


async def get_clock(request: web.Request) -> web.Response:
    return _clock_view(request)


async def set_clock(request: web.Request) -> web.Response:
    """``{"now": <ms>, "frozen": true|false}``; either may be left out."""
    body = await read_json_object(request)
    unknown = set(body) - {"now", "frozen"}
    if unknown:
        raise _invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    now = None
    if "now" in body:
        value = _number(body, "now")
        if value < 0 or value != int(value):
            raise _invalid("now must be a non-negative whole number of milliseconds.")
        now = int(value)
    frozen = body.get("frozen")
    if frozen is not None and not isinstance(frozen, bool):
        raise _invalid("frozen must be true or false.")
    clock = request.config_dict[CLOCK]
    before = clock.now_ms()
    state = clock.set(now, frozen)
    await request.config_dict[HOUSEKEEPING].clock_changed(before)
    return _clock_view(request, state)


async def advance_clock(request: web.Request) -> web.Response:
    """``{"seconds": n}`` forward (fractions allowed, down to a millisecond)."""
    body = await read_json_object(request)
    seconds = _number(body, "seconds")
    if seconds < 0:
        raise _invalid("seconds must not be negative: the clock only moves forward.")
    # every UTC midnight on the way starts its day, then retention is swept: all settled on return
    await request.config_dict[HOUSEKEEPING].advance(round(seconds * 1000))
    return _clock_view(request)


async def get_quota(request: web.Request) -> web.Response:
    """A SIM's daily bundle now: used, remaining and the next reset (UTC midnight)."""
    sim = _any_sim(request)
    quota = request.config_dict[QUOTAS].quota(sim.imsi)
    return json_response(
        {
            "imsi": sim.imsi,
            "day": quota.day,
            "used": quota.used,
            "included": quota.included,
            "remaining": quota.remaining,
            "overage": quota.overage,
            "nextResetTime": quota.next_reset_ms,
            "policy": request.config_dict[QUOTAS].bundle.policy.value,
        }
    )


def _operator(request: web.Request) -> str:
    operator_id = request.match_info["operator_id"]
    if request.config_dict[REGISTRY].operator(operator_id) is None:
        raise HarvestError(errors.NOT_FOUND, f"No such operator: {operator_id}")
    return operator_id


async def get_meter(request: web.Request) -> web.Response:
    """The operator's running meter: this month's charges, the ceiling, and the bill so far."""
    operator_id = _operator(request)
    quotas = request.config_dict[QUOTAS]
    await request.config_dict[HOUSEKEEPING].flush_reads()
    ceiling = quotas.ceilings.get(operator_id)
    return json_response(
        {
            "operatorId": operator_id,
            "charges": float(quotas.charges(operator_id)),
            "currency": "USD",
            "balanceCeiling": None if ceiling is None else float(ceiling),
            "refusingWrites": ceiling is not None and quotas.charges(operator_id) > ceiling,
            "harvestFiles": await _files_usage(request, operator_id),
        }
    )


#: The month's Harvest Files usage, by ledger kind (docs/files.md). The seeds give Harvest
#: Files no fee: it is shown, and charged nothing.
_FILES_USAGE = {
    UsageKind.FILE_UPLOAD: "uploads",
    UsageKind.FILE_UPLOAD_BYTES: "uploadedBytes",
    UsageKind.FILE_DOWNLOAD: "downloads",
    UsageKind.FILE_DOWNLOAD_BYTES: "downloadedBytes",
}


async def _files_usage(request: web.Request, operator_id: str) -> dict[str, Any]:
    month = utc_day(request.config_dict[CLOCK].now_ms())[:8]
    rows = await request.config_dict[STORE].usage_rows(operator_id, month + "01", month + "31")
    usage: dict[str, Any] = dict.fromkeys(_FILES_USAGE.values(), 0)
    peak = 0
    for row in rows:
        if row.kind in _FILES_USAGE:
            usage[_FILES_USAGE[row.kind]] += row.count
        elif row.kind is UsageKind.FILE_STORED_BYTES:
            peak = max(peak, row.count)
    usage["peakStoredBytes"] = peak
    usage["charges"] = 0.0
    return usage


async def set_balance(request: web.Request) -> web.Response:
    """``{"ceiling": <USD> | null}``: balance control (logging-service-terms 11.6). Once the
    month's charges pass the ceiling, the operator's device writes are refused until it is
    raised or the month rolls over."""
    operator_id = _operator(request)
    body = await read_json_object(request)
    if set(body) != {"ceiling"}:
        raise _invalid('The body must be {"ceiling": <USD> or null}.')
    quotas = request.config_dict[QUOTAS]
    raw = body["ceiling"]
    if raw is None:
        quotas.ceilings.pop(operator_id, None)
    else:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise _invalid("ceiling must be an amount in USD, or null.")
        try:
            ceiling = Decimal(str(raw))
        except ArithmeticError:
            raise _invalid("ceiling must be an amount in USD, or null.") from None
        if not ceiling.is_finite() or ceiling < 0:
            raise _invalid("ceiling must be a non-negative amount in USD.")
        quotas.ceilings[operator_id] = ceiling
    return await get_meter(request)


def control_app() -> web.Application:
    app = web.Application(middlewares=[control_middleware])
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", health)
    app.router.add_get("/health/live", health_live)
    app.router.add_post("/reset", reset)
    app.router.add_post("/sims", create_sim)
    app.router.add_get("/sims/{imsi}", get_sim)
    app.router.add_post("/sims/{imsi}/block", block_sim)
    app.router.add_post("/sims/{imsi}/unblock", unblock_sim)
    app.router.add_post("/operators", create_operator)
    app.router.add_get("/operators", list_operators)
    app.router.add_post("/operators/{operator_id}/token", issue_operator_token)
    app.router.add_get("/sims", list_sims)
    app.router.add_get("/sims/{imsi}/quota", get_quota)
    app.router.add_get("/operators/{operator_id}/meter", get_meter)
    app.router.add_put("/operators/{operator_id}/balance", set_balance)
    app.router.add_get("/clock", get_clock)
    app.router.add_put("/clock", set_clock)
    app.router.add_post("/clock/advance", advance_clock)
    middleware.add_fault_routes(app.router)
    requestlog.add_routes(app.router)
    linkcontrol.add_routes(app.router)
    snapshot_handlers.add_routes(app)
    return app
