"""The composition root: :func:`create_app` builds the whole emulator from its settings."""

from __future__ import annotations

from aiohttp import web

from gateway.app import setup_gateway
from harvest.api import auth, data, groups, logs, subscribers
from harvest.clock import EmulatorClock
from harvest.context import API_APP, CLOCK, LISTENERS, SETTINGS, Listeners, services_context
from harvest.control import control_app
from harvest.faults import FAULTS, Faults
from harvest.metrics import METRICS, Metrics, api_metrics_middleware, get_metrics
from harvest.requestlog import REQUEST_LOG, RequestLog
from harvest.settings import Settings
from harvest.web import error_middleware
from quotas.app import setup_quotas

#: Largest management API body; device bodies are read with their own, smaller, limit.
API_MAX_BODY = 1024 * 1024


def api_app() -> web.Application:
    """``/v1``: handlers are the snake_case of SORACOM's operationIds."""
    app = web.Application(middlewares=[api_metrics_middleware, auth.auth_middleware])
    r = app.router
    r.add_post("/auth", auth.auth)
    r.add_post("/auth/logout", auth.logout)
    r.add_get("/operators/{operator_id}", auth.get_operator)
    r.add_post("/operators/{operator_id}/token", auth.generate_auth_token)
    r.add_post("/operators/{operator_id}/contracts", auth.add_operator_contract)
    r.add_delete(
        "/operators/{operator_id}/contracts/{contract_name}", auth.delete_operator_contract
    )

    r.add_get("/data/metadata/resources", data.list_data_resource_metadata)
    r.add_get("/data/resources", data.list_data_source_resources)
    r.add_get("/data/categories/{category}", data.get_data_entries_by_category)
    r.add_get("/data/{resource_type}/{resource_id}", data.get_data_entries)
    r.add_get("/data/{resource_type}/{resource_id}/{time}", data.get_data_entry)
    r.add_delete("/data/{resource_type}/{resource_id}/{time}", data.delete_data_entry)
    r.add_get("/subscribers/{imsi}/data", data.get_data_from_subscriber)
    r.add_get("/sims/{sim_id}/data", data.get_data_from_sim)
    r.add_get("/devices/{device_id}/data", data.get_data_from_device)
    r.add_get("/lora_devices/{device_id}/data", data.get_data_from_lora_device)
    r.add_get("/sigfox_devices/{device_id}/data", data.get_data_from_sigfox_device)

    r.add_get("/subscribers", subscribers.list_subscribers)
    r.add_get("/subscribers/{imsi}", subscribers.get_subscriber)
    r.add_post("/subscribers/{imsi}/set_group", subscribers.set_group)
    r.add_post("/subscribers/{imsi}/unset_group", subscribers.unset_group)
    r.add_post("/subscribers/{imsi}/activate", subscribers.activate)
    r.add_post("/subscribers/{imsi}/deactivate", subscribers.deactivate)
    r.add_post("/subscribers/{imsi}/suspend", subscribers.suspend)
    r.add_post("/subscribers/{imsi}/set_to_standby", subscribers.set_to_standby)
    r.add_post("/subscribers/{imsi}/terminate", subscribers.terminate)
    r.add_post("/subscribers/{imsi}/enable_termination", subscribers.enable_termination)
    r.add_post("/subscribers/{imsi}/disable_termination", subscribers.disable_termination)
    r.add_get("/sims", subscribers.list_sims)
    r.add_get("/sims/{sim_id}", subscribers.get_sim)

    r.add_get("/groups", groups.list_groups)
    r.add_post("/groups", groups.create_group)
    r.add_get("/groups/{group_id}", groups.get_group)
    r.add_delete("/groups/{group_id}", groups.delete_group)
    r.add_put("/groups/{group_id}/configuration/{namespace}", groups.put_configuration_parameters)
    r.add_delete(
        "/groups/{group_id}/configuration/{namespace}", groups.delete_configuration_namespace
    )
    r.add_delete(
        "/groups/{group_id}/configuration/{namespace}/{name}", groups.delete_configuration_parameter
    )
    r.add_get("/groups/{group_id}/subscribers", groups.list_subscribers_in_group)

    r.add_get("/logs", logs.get_logs)
    return app


def setup_harvest(app: web.Application, settings: Settings) -> None:
    """The Harvest System: its services, the ``/v1`` API and the ``/_emulator`` control plane."""
    app.cleanup_ctx.append(services_context)
    app[API_APP] = api_app()  # mounted by create_app once every package has added its routes
    app.add_subapp("/_emulator", control_app())
    app.router.add_get("/metrics", get_metrics)


def create_app(settings: Settings) -> web.Application:
    """Build everything; each package plugs in with its ``setup_*`` function.

    The device catch-all (``POST`` to any other path) is added last, so ``/v1`` and
    ``/_emulator`` are matched first.
    """
    app = web.Application(middlewares=[error_middleware], client_max_size=API_MAX_BODY)
    app[SETTINGS] = settings
    app[METRICS] = Metrics(
        per_sim=settings.metrics_per_sim, per_sim_cap=settings.metrics_per_sim_cap
    )
    app[CLOCK] = clock = EmulatorClock()
    app[FAULTS] = Faults(clock)
    app[REQUEST_LOG] = RequestLog(clock, settings.request_log_size, settings.request_log)
    app[LISTENERS] = Listeners()
    setup_harvest(app, settings)
    setup_quotas(app, settings)
    app.add_subapp("/v1", app[API_APP])  # mounting freezes its routes
    setup_gateway(app, settings)
    return app
