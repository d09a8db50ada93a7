"""The composition root: :func:`create_app` builds the whole emulator from its settings."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.app import setup_gateway
from harvest.api import auth, data, groups, logs, subscribers
from harvest.clock import EmulatorClock
from harvest.console.app import setup_console
from harvest.context import (
    API_APP,
    CLOCK,
    FAULTS,
    LISTENERS,
    METRICS,
    SESSIONS,
    SETTINGS,
    STATEFUL,
    Listeners,
    Resettable,
    services_context,
)
from harvest.control import control_app
from harvest.faults import Faults
from harvest.files.app import setup_files
from harvest.linkcontrol import LINKS
from harvest.links import LinkTable
from harvest.logcaps import LogThrottle
from harvest.metrics import Metrics
from harvest.middleware import (
    api_metrics_middleware,
    api_request_log_middleware,
    fault_middleware,
    get_metrics,
)
from harvest.requestlog import LOG_THROTTLE, REQUEST_LOG, RequestLog, log_caps_context
from harvest.sessions import SessionTracker
from harvest.settings import Settings
from harvest.web import Handler, error_middleware
from quotas.app import setup_quotas

#: Largest management API body; device bodies are read with their own, smaller, limit.
API_MAX_BODY = 1024 * 1024


#: ``/v1`` operations: (method, path, handler, SORACOM operationId). The route's name is its
#: operationId, which metrics, fault rules and the request log read; handlers are the
#: operationId's snake_case.
API_ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("POST", "/auth", auth.auth, "auth"),
    ("POST", "/auth/logout", auth.logout, "logout"),
    ("GET", "/operators/{operator_id}", auth.get_operator, "getOperator"),
    ("POST", "/operators/{operator_id}/token", auth.generate_auth_token, "generateAuthToken"),
    (
        "POST",
        "/operators/{operator_id}/contracts",
        auth.add_operator_contract,
        "addOperatorContract",
    ),
    (
        "DELETE",
        "/operators/{operator_id}/contracts/{contract_name}",
        auth.delete_operator_contract,
        "deleteOperatorContract",
    ),
    (
        "GET",
        "/data/metadata/resources",
        data.list_data_resource_metadata,
        "listDataResourceMetadata",
    ),
    ("GET", "/data/resources", data.list_data_source_resources, "listDataSourceResources"),
    (
        "GET",
        "/data/categories/{category}",
        data.get_data_entries_by_category,
        "getDataEntriesByCategory",
    ),
    ("GET", "/data/{resource_type}/{resource_id}", data.get_data_entries, "getDataEntries"),
    ("GET", "/data/{resource_type}/{resource_id}/{time}", data.get_data_entry, "getDataEntry"),
    (
        "DELETE",
        "/data/{resource_type}/{resource_id}/{time}",
        data.delete_data_entry,
        "deleteDataEntry",
    ),
    ("GET", "/subscribers/{imsi}/data", data.get_data_from_subscriber, "getDataFromSubscriber"),
    ("GET", "/sims/{sim_id}/data", data.get_data_from_sim, "getDataFromSim"),
    ("GET", "/devices/{device_id}/data", data.get_data_from_device, "getDataFromDevice"),
    (
        "GET",
        "/lora_devices/{device_id}/data",
        data.get_data_from_lora_device,
        "getDataFromLoraDevice",
    ),
    (
        "GET",
        "/sigfox_devices/{device_id}/data",
        data.get_data_from_sigfox_device,
        "getDataFromSigfoxDevice",
    ),
    ("GET", "/subscribers", subscribers.list_subscribers, "listSubscribers"),
    ("GET", "/subscribers/{imsi}", subscribers.get_subscriber, "getSubscriber"),
    ("POST", "/subscribers/{imsi}/set_group", subscribers.set_group, "setGroup"),
    ("POST", "/subscribers/{imsi}/unset_group", subscribers.unset_group, "unsetGroup"),
    ("POST", "/subscribers/{imsi}/activate", subscribers.activate, "activateSubscriber"),
    ("POST", "/subscribers/{imsi}/deactivate", subscribers.deactivate, "deactivateSubscriber"),
    ("POST", "/subscribers/{imsi}/suspend", subscribers.suspend, "suspendSubscriber"),
    (
        "POST",
        "/subscribers/{imsi}/set_to_standby",
        subscribers.set_to_standby,
        "setSubscriberToStandby",
    ),
    ("POST", "/subscribers/{imsi}/terminate", subscribers.terminate, "terminateSubscriber"),
    (
        "POST",
        "/subscribers/{imsi}/enable_termination",
        subscribers.enable_termination,
        "enableTermination",
    ),
    (
        "POST",
        "/subscribers/{imsi}/disable_termination",
        subscribers.disable_termination,
        "disableTermination",
    ),
    ("GET", "/sims", subscribers.list_sims, "listSims"),
    ("GET", "/sims/{sim_id}", subscribers.get_sim, "getSim"),
    ("GET", "/groups", groups.list_groups, "listGroups"),
    ("POST", "/groups", groups.create_group, "createGroup"),
    ("GET", "/groups/{group_id}", groups.get_group, "getGroup"),
    ("DELETE", "/groups/{group_id}", groups.delete_group, "deleteGroup"),
    (
        "PUT",
        "/groups/{group_id}/configuration/{namespace}",
        groups.put_configuration_parameters,
        "putConfigurationParameters",
    ),
    (
        "DELETE",
        "/groups/{group_id}/configuration/{namespace}",
        groups.delete_configuration_namespace,
        "deleteConfigurationNamespace",
    ),
    (
        "DELETE",
        "/groups/{group_id}/configuration/{namespace}/{name}",
        groups.delete_configuration_parameter,
        "deleteConfigurationParameter",
    ),
    (
        "GET",
        "/groups/{group_id}/subscribers",
        groups.list_subscribers_in_group,
        "listSubscribersInGroup",
    ),
    ("GET", "/logs", logs.get_logs, "getLogs"),
)


def api_app() -> web.Application:
    """``/v1``: :data:`API_ROUTES`, and the middlewares every call passes through."""
    app = web.Application(
        middlewares=[
            api_request_log_middleware,
            api_metrics_middleware,
            auth.rate_limit_middleware,
            fault_middleware,
            auth.auth_middleware,
        ]
    )
    for method, path, handler, operation_id in API_ROUTES:
        if method == "GET":  # and HEAD, as aiohttp's add_get does
            app.router.add_get(path, handler, name=operation_id)
        else:
            app.router.add_route(method, path, handler, name=operation_id)
    return app


def operation_ids(api: web.Application) -> frozenset[str]:
    """The SORACOM operationIds the ``/v1`` application serves (its routes' names)."""
    return frozenset(r.name for r in api.router.resources() if r.name is not None)


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
    app[REQUEST_LOG] = RequestLog(
        clock,
        settings.request_log_size,
        settings.request_log,
        lines_per_second=settings.request_log_rate,
        file=Path(settings.request_log_file) if settings.request_log_file else None,
        file_bytes=settings.request_log_file_bytes,
    )
    app[LOG_THROTTLE] = LogThrottle(settings.log_repeat_interval)
    app[LINKS] = LinkTable(settings.link_seed)
    app[SESSIONS] = sessions = SessionTracker(
        clock, idle_s=settings.session_idle_timeout, mode=settings.session_status
    )
    if sessions.tracking:
        app[REQUEST_LOG].add_observer(sessions.observe, sessions.observe_stored)
    stateful: list[Resettable] = [clock, app[FAULTS], app[REQUEST_LOG], app[LINKS], sessions]
    app[STATEFUL] = stateful
    app.cleanup_ctx.append(log_caps_context)  # first: it must close after every listener
    app[LISTENERS] = Listeners()
    setup_harvest(app, settings)
    setup_quotas(app, settings)
    setup_files(app, settings)
    app.add_subapp("/v1", app[API_APP])  # mounting freezes its routes
    app[FAULTS].operations = operation_ids(app[API_APP])
    setup_console(app, settings)  # before the gateway's catch-all
    setup_gateway(app, settings)
    return app
