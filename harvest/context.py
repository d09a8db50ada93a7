"""The services every package shares, each behind a typed app key, and the cleanup context
that opens them before the first request and closes them after the last.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from aiohttp import web

from harvest.clock import EmulatorClock, MonotonicClock
from harvest.domain import ApiToken
from harvest.errorlog import ErrorLog
from harvest.faults import Faults
from harvest.identity import SessionTable
from harvest.ingest import IngestService
from harvest.metrics import Metrics, StateCollector
from harvest.provisioning import Provisioning
from harvest.registry import Registry
from harvest.requestlog import LOG_THROTTLE, REQUEST_LOG
from harvest.sessions import SessionTracker
from harvest.settings import Settings
from harvest.storage import MemoryStore, SqliteStore, Store
from quotas.bundle import QuotaPolicy
from quotas.ratelimit import RateSettings
from quotas.service import QuotaService

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Listeners:
    """Which listeners the emulator runs and where; health is 200 once all are up.

    The HTTP edge answers the health request itself, so it is up by definition; the raw TCP and
    UDP listeners register as they start.
    """

    addresses: dict[str, list[str]] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)
    #: Set when shutdown begins: still live, no longer ready (load balancers stop sending).
    draining: bool = False

    def expect(self, name: str) -> None:
        self.expected.add(name)

    def up(self, name: str, addresses: list[str]) -> None:
        self.addresses[name] = addresses

    def down(self, name: str) -> None:
        self.addresses.pop(name, None)

    @property
    def ready(self) -> bool:
        """Every listener is up and the emulator is not shutting down."""
        return not self.draining and self.expected <= set(self.addresses)


class Resettable(Protocol):
    """A service that holds state: ``reset()`` puts it back as on a first start (it may be a
    coroutine function)."""

    def reset(self) -> object: ...


SETTINGS = web.AppKey("settings", Settings)
#: Every service that holds state, in the order ``POST /_emulator/reset`` resets them: each
#: cleanup context adds what it builds.
STATEFUL: web.AppKey[list[Resettable]] = web.AppKey("stateful", list)
METRICS = web.AppKey("metrics", Metrics)
FAULTS = web.AppKey("faults", Faults)
CLOCK = web.AppKey("clock", EmulatorClock)
LISTENERS = web.AppKey("listeners", Listeners)
STORE = web.AppKey("store", Store)
REGISTRY = web.AppKey("registry", Registry)
INGEST = web.AppKey("ingest", IngestService)
QUOTAS = web.AppKey("quotas", QuotaService)
#: The ``/v1`` sub-application, so other packages can add their SORACOM operations to it.
API_APP = web.AppKey("api_app", web.Application)
ERROR_LOG = web.AppKey("error_log", ErrorLog)
#: Session state as the emulator sees it (``sessionStatus``, harvest/sessions.py).
SESSIONS = web.AppKey("sessions", SessionTracker)
#: The API token that authenticated this request (set by the ``/v1`` auth middleware).
TOKEN = web.RequestKey("token", ApiToken)


def make_store(settings: Settings) -> Store:
    path = settings.database_path
    if path is None:
        return MemoryStore()
    return SqliteStore(
        path, max_batch=settings.group_commit_max, fold_after=settings.journal_fold_rows
    )


def make_quotas(settings: Settings, clock: EmulatorClock) -> QuotaService:
    """The quota service as the settings configure it (spec B8, B9; logging-service-terms 11.6)."""
    rates = RateSettings(
        enabled=settings.rate_limits,
        device_writes_per_second=settings.device_writes_per_second,
        device_write_burst=settings.device_write_burst,
        api_calls_per_minute=settings.api_calls_per_minute,
        counting=settings.rate_limit_counting,
    )
    ceilings = (
        {settings.operator_id: Decimal(settings.balance_ceiling)}
        if settings.balance_ceiling
        else {}
    )
    return QuotaService(
        clock,
        policy=QuotaPolicy(settings.quota_policy),
        rates=rates,
        ceilings=ceilings,
        rate_clock=MonotonicClock(),  # the ceilings measure real throughput (spec B9)
    )


def provisioning(settings: Settings) -> Provisioning:
    return Provisioning(
        operator_id=settings.operator_id,
        auth_key_id=settings.auth_key_id,
        auth_key=settings.auth_key,
        email=settings.email,
        password=settings.password,
        imsi=settings.default_imsi,
        session_address=settings.default_session_address,
    )


async def services_context(app: web.Application) -> AsyncIterator[None]:
    """Open the store, load (or provision) the state and build the ingest service."""
    settings = app[SETTINGS]
    store = make_store(settings)
    if isinstance(store, SqliteStore):
        store.on_batch = app[METRICS].observe_commit
    await store.open()
    try:
        registry = Registry(store, app[CLOCK], provisioning(settings))
        await registry.load()
        app[STORE] = store
        app[REGISTRY] = registry
        app[ERROR_LOG] = error_log = ErrorLog(app[CLOCK])
        app[QUOTAS] = quotas = make_quotas(settings, app[CLOCK])
        app[STATEFUL] += [registry, error_log, quotas.limiter]
        metrics = app[METRICS]
        metrics.add_collector(
            StateCollector(
                lambda: (sim.status.value for sim in registry.all_sims()),
                lambda: (
                    (op.operator_id, float(quotas.charges(op.operator_id)))
                    for op in registry.operators()
                ),
            )
        )
        app[INGEST] = IngestService(
            registry=registry,
            store=store,
            clock=app[CLOCK],
            error_log=error_log,
            quotas=quotas,
            metrics=metrics,
            faults=app[FAULTS],
            resolve=SessionTable(registry, settings.ue_routes).resolve,
            max_payload_bytes=settings.max_payload_bytes,
            drop_sessionless=settings.sessionless_sims == "drop",
            strict_json=settings.invalid_json == "refuse",
            throttle=app[LOG_THROTTLE],
            reporter=app[REQUEST_LOG],
        )
        yield
    finally:
        await store.close()
