"""The HTTP side of the cross-cutting services: the ``/v1`` middlewares (metrics, the request
log, fault rules: one each), the ``/_emulator/faults`` routes and ``GET /metrics``. The services
themselves (:mod:`harvest.metrics`, :mod:`harvest.faults`) know nothing of HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from harvest import errors
from harvest.context import FAULTS, METRICS
from harvest.errors import Dropped, HarvestError
from harvest.faults import parse_rule
from harvest.requestlog import REQUEST_LOG
from harvest.web import Handler, json_response, operation_of, read_json_object


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the rules that match this ``/v1`` call (protocol ``api``, by operationId)."""
    faults = request.config_dict[FAULTS]
    if not faults.rules:
        return await handler(request)
    verdict = faults.check("api", operation=operation_of(request))
    if verdict.delay_ms:
        await asyncio.sleep(verdict.delay_ms / 1000)
    if verdict.drop:
        if request.transport is not None:
            request.transport.close()
        raise Dropped
    if verdict.error is not None:
        raise verdict.error
    return await handler(request)


async def create_fault(request: web.Request) -> web.Response:
    """``POST /_emulator/faults``: add a rule; answers 201 with it."""
    faults = request.config_dict[FAULTS]
    rule = faults.add(parse_rule(await read_json_object(request), faults.operations))
    return json_response(rule.view(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_emulator/faults``: every rule, with how often it fired."""
    return json_response([rule.view() for rule in request.config_dict[FAULTS].rules.values()])


async def delete_fault(request: web.Request) -> web.Response:
    """``DELETE /_emulator/faults/{id}``: a maintenance window ends now (see the docstring)."""
    if not await request.config_dict[FAULTS].remove(request.match_info["rule_id"]):
        raise HarvestError(errors.NOT_FOUND, f"No such fault rule: {request.match_info['rule_id']}")
    return web.Response(status=204)


async def delete_faults(request: web.Request) -> web.Response:
    await request.config_dict[FAULTS].remove()
    return web.Response(status=204)


def add_fault_routes(router: web.UrlDispatcher) -> None:
    """``/_emulator/faults``: create, list and delete fault rules."""
    router.add_post("/faults", create_fault)
    router.add_get("/faults", list_faults)
    router.add_delete("/faults", delete_faults)
    router.add_delete("/faults/{rule_id}", delete_fault)


async def _answered(
    request: web.Request, handler: Handler, done: Callable[[int, float], None]
) -> web.StreamResponse:
    """Run ``handler``, then tell ``done`` the status it answered (``0``: a drop fault, nothing
    was answered) and the seconds it took, whether it returned or raised."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except (HarvestError, web.HTTPException) as error:
        status = error.status
        raise
    except Dropped:
        status = 0
        raise
    finally:
        done(status, time.perf_counter() - started)


@web.middleware
async def api_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every ``/v1`` call by operation (SORACOM's operationId, the route's
    name) and status."""

    def done(status: int, elapsed: float) -> None:
        operation = operation_of(request)
        metrics = request.config_dict[METRICS]
        metrics.api_requests.labels(operation, str(status)).inc()
        metrics.api_latency.labels(operation).observe(elapsed)

    return await _answered(request, handler, done)


@web.middleware
async def api_request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write every ``/v1`` call's request log line (protocol ``api``, named by operation)."""

    def done(status: int, elapsed: float) -> None:
        request.config_dict[REQUEST_LOG].record(
            "api", request.remote or "", None, status, request.content_length or 0, elapsed,
            operation_of(request),
        )  # fmt: skip

    return await _answered(request, handler, done)


async def get_metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the Prometheus text exposition."""
    response = web.Response(body=request.config_dict[METRICS].exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
