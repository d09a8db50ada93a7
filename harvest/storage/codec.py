"""JSON documents for the state records, shared by every store that writes them to disk."""

from __future__ import annotations

import json
from typing import Any

from harvest.domain import ApiToken, AuthKey, Group, Operator, Sim, SimStatus


def dump(record: Operator | AuthKey | ApiToken | Group | Sim) -> str:
    doc: dict[str, Any]
    if isinstance(record, Group):
        doc = {
            "group_id": record.group_id,
            "operator_id": record.operator_id,
            "tags": dict(record.tags),
            "configuration": {ns: dict(v) for ns, v in record.configuration.items()},
            "created_ms": record.created_ms,
            "modified_ms": record.modified_ms,
        }
    elif isinstance(record, Sim):
        doc = {name: getattr(record, name) for name in Sim.__dataclass_fields__}
        doc["status"] = record.status.value
        doc["tags"] = dict(record.tags)
    else:
        doc = {name: getattr(record, name) for name in type(record).__dataclass_fields__}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def load_operator(text: str) -> Operator:
    return Operator(**json.loads(text))


def load_auth_key(text: str) -> AuthKey:
    return AuthKey(**json.loads(text))


def load_token(text: str) -> ApiToken:
    return ApiToken(**json.loads(text))


def load_group(text: str) -> Group:
    return Group(**json.loads(text))


def load_sim(text: str) -> Sim:
    doc = json.loads(text)
    doc["status"] = SimStatus(doc["status"])
    return Sim(**doc)
