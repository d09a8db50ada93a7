"""Fault injection: rules that make chosen requests fail, slow down, vanish or repeat, so tests
can exercise how firmware and backends cope (managed at ``/_emulator/faults``).

A rule matches by SIM (IMSI), group, protocol (``http``, ``tcp``, ``udp`` for device writes,
``api`` for the management API) and API operation (SORACOM's operationId, e.g. ``listSubscribers``);
unset fields match anything. It fires for the next ``count`` matches, inside a window of the
emulator clock (``from``/``until``, UNIX ms), and with a ``probability`` drawn from its own
``seed``, so a run is reproducible. Effects:

- ``delay``: wait ``delayMs`` first, then carry on;
- ``status``: answer ``status`` in the service's own error format (device HTTP and API: the
  ``{"code","message"}`` body; raw TCP/UDP: the ASCII status), storing nothing;
- ``drop``: no answer at all: no UDP reply, the TCP or HTTP connection closed; nothing stored;
- ``duplicate``: store the entry, and the same content again one millisecond later (a device
  that retried after a lost reply);
- ``maintenance``: every request it matches (by default all, device and API) is answered
  ``503``, as during maintenance (logging-service-terms 5.2).

A ``maintenance`` rule that matches everything (no ``imsi``, ``groupId``, ``protocol``,
``operation`` or ``count``, probability 1) makes the service *completely unavailable* from its
``from`` (or its creation) to its ``until`` (or its deletion, if sooner): see
:meth:`FaultRule.outage_end`. ``quotas.housekeeping`` turns each such window that lasted 24
hours or more into the bill credit of logging-service-terms 14.2(c) (docs/billing.md).

The control plane itself is never subject to faults.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harvest import errors
from harvest.clock import Clock
from harvest.errors import HarvestError
from harvest.wire import INT64_MAX

EFFECTS = ("delay", "status", "drop", "duplicate", "maintenance")
PROTOCOLS = ("http", "tcp", "udp", "api")
_FIELDS = {
    "imsi", "groupId", "protocol", "operation", "effect", "delayMs", "status", "count",
    "from", "until", "probability", "seed",
}  # fmt: skip


@dataclass(slots=True)
class FaultRule:
    """One rule; see the module docstring. ``hits`` counts the times it fired."""

    rule_id: str
    effect: str
    imsi: str | None = None
    group_id: str | None = None
    protocol: str | None = None
    operation: str | None = None
    delay_ms: int = 0
    status: int = 500
    count: int | None = None
    from_ms: int | None = None
    until_ms: int | None = None
    probability: float = 1.0
    seed: int | None = None
    hits: int = 0
    #: When it was added (emulator clock): the start of its window when ``from`` is unset.
    created_ms: int = 0
    #: Its unavailability has been accounted for (once per window; ``quotas.housekeeping``).
    settled: bool = False
    _random: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def whole_service(self) -> bool:
        """A ``maintenance`` rule that matches every request: while it is in force the service
        is completely unavailable (logging-service-terms 14.2(c))."""
        return (
            self.effect == "maintenance"
            and self.imsi is None
            and self.group_id is None
            and self.protocol is None
            and self.operation is None
            and self.count is None
            and self.probability >= 1.0
        )

    @property
    def start_ms(self) -> int:
        """Where its window starts: ``from``, or its creation when ``from`` is unset."""
        return self.created_ms if self.from_ms is None else self.from_ms

    def outage_end(self, now_ms: int, *, deleted: bool) -> int | None:
        """When the complete unavailability this rule makes ended, as of ``now_ms``; ``None``
        while it lasts, or if the rule is not :attr:`whole_service`.

        It ends at ``until`` once the clock has passed it (the rule matches up to ``until``
        inclusive), or, when the rule is deleted at ``now_ms``, at ``now_ms`` or the earlier
        ``until``.
        """
        if not self.whole_service:
            return None
        if deleted:
            return now_ms if self.until_ms is None else min(self.until_ms, now_ms)
        if self.until_ms is not None and now_ms > self.until_ms:
            return self.until_ms
        return None

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {"id": self.rule_id, "effect": self.effect, "hits": self.hits}
        for key, value in (
            ("imsi", self.imsi), ("groupId", self.group_id), ("protocol", self.protocol),
            ("operation", self.operation), ("count", self.count), ("from", self.from_ms),
            ("until", self.until_ms), ("seed", self.seed),
        ):  # fmt: skip
            if value is not None:
                view[key] = value
        if self.effect == "delay":
            view["delayMs"] = self.delay_ms
        if self.effect == "status":
            view["status"] = self.status
        view["probability"] = self.probability
        if self.count is not None:
            view["remaining"] = max(0, self.count - self.hits)
        return view

    def matches(
        self, now_ms: int, protocol: str, imsi: str | None, group_id: str | None,
        operation: str | None,
    ) -> bool:  # fmt: skip
        if self.protocol is not None and self.protocol != protocol:
            return False
        if self.imsi is not None and self.imsi != imsi:
            return False
        if self.group_id is not None and self.group_id != group_id:
            return False
        if self.operation is not None and self.operation != operation:
            return False
        if self.count is not None and self.hits >= self.count:
            return False
        if self.from_ms is not None and now_ms < self.from_ms:
            return False
        if self.until_ms is not None and now_ms > self.until_ms:
            return False
        return self.probability >= 1.0 or self._random.random() < self.probability


def _bad(message: str) -> HarvestError:
    return HarvestError(errors.INVALID_BODY, message)


def _int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(f"{name} must be a whole number from {low} to {high}.")
    return value


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _bad(f"{name} must be a non-empty string.")
    return value


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _operation(body: dict[str, Any], known: frozenset[str]) -> str | None:
    """The rule's operation as SORACOM's operationId. Its snake_case is accepted too (the
    handlers' names); a name the API does not serve is refused, so a rule cannot silently
    never match."""
    value = _text(body, "operation")
    if value is None or not known:
        return value
    if value in known:
        return value
    for operation_id in known:
        if _snake(operation_id) == value:
            return operation_id
    raise _bad(
        f"operation {value!r} is not an operation the API serves; use SORACOM's operationId,"
        f" one of: {', '.join(sorted(known))}."
    )


def parse_rule(body: dict[str, Any], operations: frozenset[str] = frozenset()) -> FaultRule:
    """A rule from its JSON form, or 400 naming what is wrong. ``operations`` are the
    operationIds a rule may name (any, when empty)."""
    unknown = set(body) - _FIELDS
    if unknown:
        raise _bad(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    effect = body.get("effect")
    if effect not in EFFECTS:
        raise _bad(f"effect must be one of {', '.join(EFFECTS)}.")
    protocol = _text(body, "protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise _bad(f"protocol must be one of {', '.join(PROTOCOLS)}.")
    probability = body.get("probability", 1.0)
    if (
        not isinstance(probability, int | float)
        or isinstance(probability, bool)
        or not (0.0 <= probability <= 1.0)
    ):
        raise _bad("probability must be a number from 0 to 1.")
    status = _int(body, "status", 400, 599)
    if effect == "status" and status is None:
        raise _bad("effect status needs a status from 400 to 599.")
    delay = _int(body, "delayMs", 0, 600_000)
    if effect == "delay" and delay is None:
        raise _bad("effect delay needs delayMs.")
    seed = _int(body, "seed", 0, INT64_MAX)
    rule = FaultRule(
        rule_id=str(uuid.uuid4()),
        effect=effect,
        imsi=_text(body, "imsi"),
        group_id=_text(body, "groupId"),
        protocol=protocol,
        operation=_operation(body, operations),
        delay_ms=delay or 0,
        status=status or 500,
        count=_int(body, "count", 1, 2**31),
        from_ms=_int(body, "from", 0, INT64_MAX),
        until_ms=_int(body, "until", 0, INT64_MAX),
        probability=float(probability),
        seed=seed,
    )
    rule._random.seed(seed)
    return rule


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the matching rules ask of one request (all that fired, combined)."""

    delay_ms: int = 0
    error: HarvestError | None = None
    drop: bool = False
    duplicate: bool = False


NO_FAULT = Verdict()


#: Called with the rules a ``DELETE`` removed, after they are gone.
RemovedListener = Callable[[Sequence[FaultRule]], Awaitable[None]]


class Faults:
    """The rules in force, in the order they were created."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.rules: dict[str, FaultRule] = {}
        #: The API's operationIds, which rules may name (set once the routes are built).
        self.operations: frozenset[str] = frozenset()
        #: Told of every rule deleted through the control plane (not of :meth:`clear`).
        self.listeners: list[RemovedListener] = []

    def add(self, rule: FaultRule) -> FaultRule:
        """Put ``rule`` in force; it was created now (emulator clock)."""
        rule.created_ms = self._clock.now_ms()
        self.rules[rule.rule_id] = rule
        return rule

    def reset(self) -> None:
        """Forget every rule without telling the listeners (a reset starts over)."""
        self.rules.clear()

    async def remove(self, rule_id: str | None = None) -> bool:
        """Delete one rule, or (``None``) all, and tell the listeners; ``False`` if there is no
        rule ``rule_id``."""
        if rule_id is None:
            removed = list(self.rules.values())
            self.rules.clear()
        else:
            rule = self.rules.pop(rule_id, None)
            if rule is None:
                return False
            removed = [rule]
        for listener in self.listeners:
            await listener(removed)
        return True

    def check(
        self, protocol: str, *, imsi: str | None = None, group_id: str | None = None,
        operation: str | None = None,
    ) -> Verdict:  # fmt: skip
        """Fire every matching rule once and combine their effects (cheap when none exist)."""
        if not self.rules:
            return NO_FAULT
        now = self._clock.now_ms()
        delay, error, drop, duplicate = 0, None, False, False
        for rule in self.rules.values():
            if not rule.matches(now, protocol, imsi, group_id, operation):
                continue
            rule.hits += 1
            if rule.effect == "delay":
                delay += rule.delay_ms
            elif rule.effect == "drop":
                drop = True
            elif rule.effect == "duplicate":
                duplicate = True
            elif error is None:
                spec = errors.MAINTENANCE if rule.effect == "maintenance" else errors.FAULT_INJECTED
                status = 503 if rule.effect == "maintenance" else rule.status
                message = (
                    "The service is under maintenance (logging-service-terms 5.2)."
                    if rule.effect == "maintenance"
                    else f"Injected fault {rule.rule_id}: status {status}."
                )
                error = HarvestError(spec, message, status=status)
        return Verdict(delay, error, drop, duplicate)
