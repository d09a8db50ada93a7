"""The state of the emulated account: operators, credentials, tokens, groups and SIMs.

The registry holds the whole state in memory (it is small) and writes every change through the
store before it changes its own copy, so what a caller sees has been committed. State changes
are serialised by one lock; reads never wait.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from harvest import errors
from harvest.clock import Clock
from harvest.domain import (
    HARVEST_ENABLED_KEY,
    HARVEST_NAMESPACE,
    ApiToken,
    AuthKey,
    Group,
    Operator,
    Sim,
    SimStatus,
    normalise_address,
)
from harvest.errors import HarvestError
from harvest.identity import LoopbackAllocator
from harvest.provisioning import (
    Either,
    NewSim,
    Provisioning,
    check_secret,
    hash_secret,
    new_sim,
    utf8,
)
from harvest.storage.base import (
    DeleteEverything,
    DeleteGroup,
    DeleteTokens,
    MarkProvisioned,
    Mutation,
    PutAuthKey,
    PutGroup,
    PutOperator,
    PutSim,
    PutToken,
    Store,
)
from harvest.storage.state import StateTables
from quotas.limits import retention_days


class Registry:
    """The emulated account's state; see the module docstring."""

    def __init__(self, store: Store, clock: Clock, provisioning: Provisioning) -> None:
        self._store = store
        self._clock = clock
        self._provisioning = provisioning
        self._lock = asyncio.Lock()
        self._allocator = LoopbackAllocator()
        #: The largest 15-digit IMSI known (kept as SIMs are indexed): the next default IMSI
        #: follows it without a scan of every SIM.
        self._largest_imsi = -1
        #: The mirror of the store's state; the names below are its tables.
        self._state = StateTables()
        self._operators = self._state.operators
        self._auth_keys = self._state.auth_keys
        self._tokens = self._state.tokens
        self._groups = self._state.groups
        self._sims = self._state.sims
        #: Called after every committed change (e.g. housekeeping's Harvest-day recording).
        self.listeners: list[Callable[[Sequence[Mutation]], Awaitable[None]]] = []
        self._clear()

    def _clear(self) -> None:
        """Empty the mirror and its indexes (the tables are cleared in place)."""
        self._state.clear()
        self._by_address: dict[str, Sim] = {}
        self._by_sim_id: dict[str, Sim] = {}
        self._allocator.rewind()
        self._largest_imsi = -1

    # --- loading and provisioning -------------------------------------------------------------
    async def load(self) -> None:
        """Load the stored state; provision the defaults on the very first start."""
        snapshot = await self._store.load_state()
        self._clear()
        self._state.load(snapshot)
        for sim in snapshot.sims:
            self._index(sim)
        if not snapshot.provisioned:
            async with self._lock:
                await self._commit(self._provision())

    def _provision(self) -> list[Mutation]:
        p = self._provisioning
        now = self._clock.now_ms()
        operator, key = self._new_operator(
            p.operator_id, p.email, p.password, p.auth_key_id, p.auth_key, now
        )
        group = Group(
            group_id=str(uuid.uuid4()),
            operator_id=operator.operator_id,
            tags={"name": "harvest-emulator"},
            configuration={HARVEST_NAMESPACE: {HARVEST_ENABLED_KEY: True}},
            created_ms=now,
            modified_ms=now,
        )
        sim = new_sim(
            operator.operator_id,
            p.imsi,
            group.group_id,
            SimStatus.READY,
            normalise_address(p.session_address),
            {"name": "default"},
            now,
        )
        return [
            PutOperator(operator),
            PutAuthKey(key),
            PutGroup(group),
            PutSim(sim),
            MarkProvisioned(),
        ]

    @staticmethod
    def _new_operator(
        operator_id: str, email: str, password: str, key_id: str, key: str, now: int
    ) -> tuple[Operator, AuthKey]:
        operator = Operator(operator_id, email, hash_secret(password), "", now, now)
        return operator, AuthKey(key_id, hash_secret(key), operator_id)

    async def _commit(self, mutations: list[Mutation]) -> None:
        """Write ``mutations`` through the store, mirror them here, then tell the listeners.
        Hold the lock (listeners must not call back into the registry's mutating methods)."""
        await self._store.apply(mutations)
        for mutation in mutations:
            if isinstance(mutation, DeleteEverything):
                self._clear()
            elif isinstance(mutation, PutSim):
                self._index(mutation.sim)  # before the table changes: it reads the old SIM
            self._state.apply(mutation)
        for listener in self.listeners:
            await listener(mutations)

    def _note_imsi(self, imsi: str) -> None:
        number = int(imsi)
        if number > self._largest_imsi:
            self._largest_imsi = number

    def _index(self, sim: Sim) -> None:
        """Index ``sim`` by address and SIM id, and store it in the table."""
        if len(sim.imsi) == 15:
            self._note_imsi(sim.imsi)
        old = self._sims.get(sim.imsi)
        if old is not None and old.session_address is not None:
            self._by_address.pop(old.session_address, None)
        self._sims[sim.imsi] = sim
        self._by_sim_id[sim.sim_id] = sim
        if sim.session_address is not None:
            self._by_address[sim.session_address] = sim

    async def reset(self) -> None:
        """Forget everything and provision the defaults again, as on a first start."""
        async with self._lock:
            await self._commit([DeleteEverything(), *self._provision()])

    # --- reads --------------------------------------------------------------------------------
    def sim_by_address(self, address: str) -> Sim | None:
        return self._by_address.get(address)

    def sim_by_imsi(self, imsi: str) -> Sim | None:
        """Any operator's SIM (device-side identity and the control plane see every SIM)."""
        return self._sims.get(imsi)

    def group_by_id(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def operator(self, operator_id: str) -> Operator | None:
        return self._operators.get(operator_id)

    def operators(self) -> list[Operator]:
        return sorted(self._operators.values(), key=lambda o: o.operator_id)

    def group(self, operator_id: str, group_id: str) -> Group:
        """The operator's group, or 404: another operator's group does not exist for it."""
        group = self._groups.get(group_id)
        if group is None or group.operator_id != operator_id:
            raise HarvestError(errors.NOT_FOUND, f"No such group: {group_id}")
        return group

    def groups(self, operator_id: str) -> list[Group]:
        return sorted(
            (g for g in self._groups.values() if g.operator_id == operator_id),
            key=lambda g: g.group_id,
        )

    def sim(self, operator_id: str, imsi: str) -> Sim:
        sim = self._sims.get(imsi)
        if sim is None or sim.operator_id != operator_id:
            raise HarvestError(errors.NOT_FOUND, f"No such subscriber: {imsi}")
        return sim

    def find_sim(self, operator_id: str, imsi: str) -> Sim | None:
        sim = self._sims.get(imsi)
        return sim if sim is not None and sim.operator_id == operator_id else None

    def sim_by_id(self, operator_id: str, sim_id: str) -> Sim | None:
        sim = self._by_sim_id.get(sim_id)
        return sim if sim is not None and sim.operator_id == operator_id else None

    def sims(self, operator_id: str) -> list[Sim]:
        return sorted(
            (s for s in self._sims.values() if s.operator_id == operator_id), key=lambda s: s.imsi
        )

    def all_sims(self) -> Iterable[Sim]:
        return self._sims.values()

    def default_group(self, operator_id: str) -> Group | None:
        """The operator's oldest group with Harvest on: where new SIMs go by default."""
        candidates = [
            g for g in self._groups.values() if g.operator_id == operator_id and g.harvest_enabled
        ]
        return min(candidates, key=lambda g: (g.created_ms, g.group_id), default=None)

    # --- authentication -----------------------------------------------------------------------
    def authenticate_key(self, key_id: str, secret: str) -> str | None:
        key = self._auth_keys.get(key_id)
        if key is None or not check_secret(secret, key.secret_hash):
            return None
        return key.operator_id

    def authenticate_root(self, email: str, password: str) -> str | None:
        for operator in self._operators.values():
            if operator.email == email and check_secret(password, operator.password_hash):
                return operator.operator_id
        return None

    async def issue_token(
        self, operator_id: str, timeout_s: int, api_key: str | None = None
    ) -> ApiToken:
        """A new API token (and API key unless given) that expires ``timeout_s`` from now."""
        now = self._clock.now_ms()
        token = ApiToken(
            token=secrets.token_urlsafe(48),
            api_key=api_key or f"api-{uuid.uuid4()}",
            operator_id=operator_id,
            expires_ms=now + timeout_s * 1000,
        )
        expired = tuple(t.token for t in self._tokens.values() if t.expires_ms <= now)
        async with self._lock:
            await self._commit(
                [DeleteTokens(expired), PutToken(token)] if expired else [PutToken(token)]
            )
        return token

    def check_token(self, api_key: str | None, token: str | None) -> ApiToken:
        """The live token for this API key, or 401 ``AUM0001``."""
        if not api_key or not token:
            raise HarvestError(errors.TOKEN_REQUIRED)
        found = self._tokens.get(token)
        # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold any text.
        if found is None or not hmac.compare_digest(utf8(found.api_key), utf8(api_key)):
            raise HarvestError(errors.TOKEN_REQUIRED, "The API key or token is invalid.")
        if found.expires_ms <= self._clock.now_ms():
            raise HarvestError(errors.TOKEN_REQUIRED, "The API token has expired.")
        return found

    async def revoke(self, token: ApiToken) -> None:
        async with self._lock:
            await self._commit([DeleteTokens((token.token,))])

    # --- operators ----------------------------------------------------------------------------
    async def create_operator(
        self,
        *,
        operator_id: str | None,
        email: str | None,
        password: str,
        auth_key_id: str | None,
        auth_key: str | None,
    ) -> tuple[Operator, str, str]:
        """A new operator with root credentials and one auth key; answers (operator, id, key)."""
        async with self._lock:
            if operator_id is None:
                numbers = [int(o[2:]) for o in self._operators if o[2:].isdigit()]
                operator_id = f"OP{max(numbers, default=0) + 1:010d}"
            if operator_id in self._operators:
                raise HarvestError(errors.CONFLICT, f"Operator {operator_id} already exists.")
            email = email or f"{operator_id.lower()}@example.com"
            if any(o.email == email for o in self._operators.values()):
                raise HarvestError(errors.CONFLICT, f"Email {email} is already in use.")
            key_id = auth_key_id or f"keyId-{secrets.token_hex(16)}"
            if key_id in self._auth_keys:
                raise HarvestError(errors.CONFLICT, f"Auth key {key_id} already exists.")
            key = auth_key or f"secret-{secrets.token_hex(32)}"
            try:
                operator, record = self._new_operator(
                    operator_id, email, password, key_id, key, self._clock.now_ms()
                )
            except ValueError as error:
                raise HarvestError(errors.INVALID_BODY, str(error)) from None
            await self._commit([PutOperator(operator), PutAuthKey(record)])
            return operator, key_id, key

    def retention_days(self, operator_id: str) -> int:
        operator = self._operators.get(operator_id)
        return retention_days(operator.contracts if operator else {})

    async def set_contract(self, operator_id: str, name: str, detail: Mapping[str, Any]) -> None:
        async with self._lock:
            operator = self._operators[operator_id]
            contracts = {**operator.contracts, name: dict(detail)}
            updated = replace(operator, contracts=contracts, updated_ms=self._clock.now_ms())
            await self._commit([PutOperator(updated)])

    async def delete_contract(self, operator_id: str, name: str) -> None:
        """404 when the operator has no such contract."""
        async with self._lock:
            operator = self._operators[operator_id]
            if name not in operator.contracts:
                raise HarvestError(errors.NOT_FOUND, f"The operator has no {name} contract.")
            contracts = {k: v for k, v in operator.contracts.items() if k != name}
            updated = replace(operator, contracts=contracts, updated_ms=self._clock.now_ms())
            await self._commit([PutOperator(updated)])

    # --- groups -------------------------------------------------------------------------------
    async def create_group(
        self,
        operator_id: str,
        tags: Mapping[str, str],
        configuration: Mapping[str, Mapping[str, Any]],
    ) -> Group:
        now = self._clock.now_ms()
        try:
            group = Group(
                str(uuid.uuid4()),
                operator_id,
                {"name": "", **tags},
                {ns: dict(values) for ns, values in configuration.items()},
                now,
                now,
            )
        except ValueError as error:
            raise HarvestError(errors.INVALID_BODY, str(error)) from None
        async with self._lock:
            await self._commit([PutGroup(group)])
        return group

    async def update_group(
        self,
        operator_id: str,
        group_id: str,
        change: Callable[[Group], Mapping[str, Mapping[str, Any]]],
    ) -> Group:
        """Apply ``change(group) -> configuration`` under the lock and store the result.

        ``change`` may raise a :class:`HarvestError` to refuse; nothing is stored then.
        """
        async with self._lock:
            group = self.group(operator_id, group_id)
            updated = replace(group, configuration=change(group), modified_ms=self._clock.now_ms())
            await self._commit([PutGroup(updated)])
            return updated

    async def delete_group(self, operator_id: str, group_id: str) -> None:
        """Delete the group; its SIMs leave it (they then have no group)."""
        async with self._lock:
            self.group(operator_id, group_id)
            now = self._clock.now_ms()
            members = [
                replace(s, group_id=None, modified_ms=now)
                for s in self._sims.values()
                if s.group_id == group_id
            ]
            await self._commit([DeleteGroup(group_id), *(PutSim(s) for s in members)])

    # --- SIMs ---------------------------------------------------------------------------------
    async def create_sim(
        self,
        operator_id: str,
        *,
        imsi: str | None = None,
        group_id: str | None = None,
        status: SimStatus = SimStatus.READY,
        session_address: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Sim:
        """Provision a SIM; with no session address it gets its own loopback address."""
        spec = NewSim(operator_id, imsi, group_id, status, session_address, tags or {})
        return (await self.create_sims([spec]))[0]

    async def create_sims(
        self, specs: Sequence[NewSim], *, keep_existing: bool = False
    ) -> list[Sim]:
        """Provision SIMs in one commit (a fleet of 100,000 in a hundred calls, not 100,000
        fsyncs); all or none. An IMSI that exists is a ``409``, or, with ``keep_existing``,
        answered with the existing SIM untouched. No IMSI: the next after the largest."""
        async with self._lock:
            now = self._clock.now_ms()
            sims: list[Sim] = []
            new: dict[str, Sim] = {}
            addresses: set[str] = set()
            for spec in specs:
                if spec.operator_id not in self._operators:
                    raise HarvestError(errors.NOT_FOUND, f"No such operator: {spec.operator_id}")
                imsi = spec.imsi
                if imsi is None:
                    imsi = f"{max(self._largest_imsi, int(self._provisioning.imsi)) + 1:015d}"
                elif imsi in self._sims or imsi in new:
                    existing = self._sims.get(imsi) or new[imsi]
                    if keep_existing and imsi in self._sims:
                        sims.append(existing)
                        continue
                    raise HarvestError(errors.CONFLICT, f"SIM {imsi} already exists.")
                if spec.group_id is not None:
                    self.group(spec.operator_id, spec.group_id)
                address = spec.session_address
                if address is None:
                    address = self._allocator.allocate(Either(self._by_address, addresses))
                elif address in self._by_address or address in addresses:
                    owner = self._by_address[address].imsi if address in self._by_address else "?"
                    raise HarvestError(
                        errors.CONFLICT, f"Session address {address} belongs to SIM {owner}."
                    )
                try:
                    sim = new_sim(
                        spec.operator_id, imsi, spec.group_id, spec.status, address,
                        spec.tags, now,
                    )  # fmt: skip
                except ValueError as error:
                    raise HarvestError(errors.INVALID_BODY, str(error)) from None
                addresses.add(address)
                new[imsi] = sim
                if len(imsi) == 15:  # so the next IMSI without one follows it
                    self._note_imsi(imsi)
                sims.append(sim)
            if new:
                try:
                    await self._commit([PutSim(sim) for sim in new.values()])
                except BaseException:
                    self._largest_imsi = max(
                        (int(i) for i in self._sims if len(i) == 15), default=-1
                    )
                    raise
            return sims

    async def update_sim(self, operator_id: str, imsi: str, **changes: Any) -> Sim:
        async with self._lock:
            sim = self.sim(operator_id, imsi)
            updated = sim.with_changes(modified_ms=self._clock.now_ms(), **changes)
            await self._commit([PutSim(updated)])
            return updated

    async def set_status(self, operator_id: str, imsi: str, status: SimStatus) -> Sim:
        """Change the SIM's status through the API, checked under the lock (400 if not allowed).

        Terminating needs termination protection off, as on SORACOM's API.
        """
        async with self._lock:
            sim = self.sim(operator_id, imsi)
            if not sim.status.can_become(status):
                raise HarvestError(
                    errors.INVALID_TRANSITION,
                    f"SIM {imsi} is {sim.status} and cannot become {status}.",
                )
            if status is SimStatus.TERMINATED and not sim.termination_enabled:
                raise HarvestError(
                    errors.INVALID_TRANSITION,
                    f"SIM {imsi} has termination protection on; call enable_termination first.",
                )
            updated = sim.with_changes(status=status, modified_ms=self._clock.now_ms())
            await self._commit([PutSim(updated)])
            return updated

    async def set_group(self, operator_id: str, imsi: str, group_id: str) -> Sim:
        """Move the SIM into the operator's group (404 for either unknown).

        The group is checked under the lock: a group deleted meanwhile must not be joined.
        """
        async with self._lock:
            self.group(operator_id, group_id)
            sim = self.sim(operator_id, imsi)
            updated = sim.with_changes(group_id=group_id, modified_ms=self._clock.now_ms())
            await self._commit([PutSim(updated)])
            return updated

    async def unset_group(self, operator_id: str, imsi: str) -> Sim:
        """Take the SIM out of its group; 404 when it is in none (checked under the lock)."""
        async with self._lock:
            sim = self.sim(operator_id, imsi)
            if sim.group_id is None:
                raise HarvestError(errors.NOT_FOUND, f"Subscriber {imsi} is not in a group.")
            updated = sim.with_changes(group_id=None, modified_ms=self._clock.now_ms())
            await self._commit([PutSim(updated)])
            return updated

    async def activate_on_traffic(self, imsi: str) -> None:
        """Data in ``ready`` or ``standby`` makes a SIM ``active`` (air-global-terms Sch. 1(2))."""
        async with self._lock:
            sim = self._sims.get(imsi)
            if sim is None or sim.status not in (SimStatus.READY, SimStatus.STANDBY):
                return
            await self._commit(
                [
                    PutSim(
                        sim.with_changes(status=SimStatus.ACTIVE, modified_ms=self._clock.now_ms())
                    )
                ]
            )
