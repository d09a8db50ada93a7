"""The state records in dictionaries, changed by the state mutations.

The in-memory store keeps its state here, and the registry mirrors any store's state here; the
one :meth:`StateTables.apply` serves both, so they cannot drift apart.
"""

from __future__ import annotations

from harvest.domain import ApiToken, AuthKey, Group, Operator, Sim, revised
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
    StateSnapshot,
)


class StateTables:
    """Operators, auth keys, tokens, groups and SIMs by key, and whether provisioning ran.

    The dictionaries are cleared in place, never replaced, so references to them stay valid.
    Every group put here gets a new revision (:func:`~harvest.domain.revised`), so whatever is
    cached from a group is recomputed after any change to it, however fast the changes come.
    """

    def __init__(self) -> None:
        self.provisioned = False
        self.operators: dict[str, Operator] = {}
        self.auth_keys: dict[str, AuthKey] = {}
        self.tokens: dict[str, ApiToken] = {}
        self.groups: dict[str, Group] = {}
        self.sims: dict[str, Sim] = {}

    def clear(self) -> None:
        self.provisioned = False
        for table in (self.operators, self.auth_keys, self.tokens, self.groups, self.sims):
            table.clear()

    def load(self, snapshot: StateSnapshot) -> None:
        self.clear()
        self.provisioned = snapshot.provisioned
        self.operators.update((o.operator_id, o) for o in snapshot.operators)
        self.auth_keys.update((k.key_id, k) for k in snapshot.auth_keys)
        self.tokens.update((t.token, t) for t in snapshot.tokens)
        self.groups.update((g.group_id, revised(g)) for g in snapshot.groups)
        self.sims.update((s.imsi, s) for s in snapshot.sims)

    def snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            provisioned=self.provisioned,
            operators=tuple(self.operators.values()),
            auth_keys=tuple(self.auth_keys.values()),
            tokens=tuple(self.tokens.values()),
            groups=tuple(self.groups.values()),
            sims=tuple(self.sims.values()),
        )

    def apply(self, mutation: Mutation) -> bool:
        """Apply a state mutation (``DeleteEverything`` clears the state only); ``False`` when
        ``mutation`` concerns data, not state."""
        if isinstance(mutation, DeleteEverything):
            self.clear()
        elif isinstance(mutation, PutOperator):
            self.operators[mutation.operator.operator_id] = mutation.operator
        elif isinstance(mutation, PutAuthKey):
            self.auth_keys[mutation.auth_key.key_id] = mutation.auth_key
        elif isinstance(mutation, PutToken):
            self.tokens[mutation.token.token] = mutation.token
        elif isinstance(mutation, DeleteTokens):
            for token in mutation.tokens:
                self.tokens.pop(token, None)
        elif isinstance(mutation, PutGroup):
            self.groups[mutation.group.group_id] = revised(mutation.group)
        elif isinstance(mutation, DeleteGroup):
            self.groups.pop(mutation.group_id, None)
        elif isinstance(mutation, PutSim):
            self.sims[mutation.sim.imsi] = mutation.sim
        elif isinstance(mutation, MarkProvisioned):
            self.provisioned = True
        else:
            return False
        return True
