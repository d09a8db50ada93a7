"""Wire shapes of the management API, as SORACOM's OpenAPI document declares them.

Absent values are left out rather than sent as ``null``: the OpenAPI document declares plain
``type: string`` fields, which ``null`` would not satisfy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from harvest.domain import DataEntry, Group, Operator, ResourceMetadata, ResourceType, Sim
from harvest.sessions import SessionState

#: Fixed values the emulator reports for every SIM (it has one plan and one APN).
SUBSCRIPTION = "plan01s"
APN = "soracom.io"


def iso_time(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def session_status(sim: Sim, session: SessionState | None = None) -> dict[str, Any]:
    """OpenAPI ``SessionStatus``: ``session`` as the emulator sees it (harvest/sessions.py);
    without one, online whenever the network would give the SIM a data session (an inactive,
    suspended, terminated or barred SIM has none, spec B12)."""
    if session is None:
        address = sim.session_address if sim.has_session else None
        session = SessionState(sim.has_session, address, sim.modified_ms)
    status: dict[str, Any] = {
        "online": session.online,
        "imsi": sim.imsi,
        "subscription": SUBSCRIPTION,
        "lastUpdatedAt": session.last_updated_ms,
    }
    if session.online and session.ue_address is not None:
        status["ueIpAddress"] = session.ue_address
    return status


def subscriber(sim: Sim, session: SessionState | None = None) -> dict[str, Any]:
    """OpenAPI ``Subscriber``."""
    view: dict[str, Any] = {
        "imsi": sim.imsi,
        "simId": sim.sim_id,
        "iccid": sim.iccid,
        "msisdn": sim.msisdn,
        "operatorId": sim.operator_id,
        "status": sim.status.value,
        "speedClass": sim.speed_class,
        "type": sim.speed_class,
        "subscription": SUBSCRIPTION,
        "moduleType": "virtual",
        "apn": APN,
        "bundles": [],
        "tags": dict(sim.tags),
        "terminationEnabled": sim.termination_enabled,
        "sessionStatus": session_status(sim, session),
        "createdTime": sim.created_ms,
        "createdAt": sim.created_ms,
        "lastModifiedTime": sim.modified_ms,
        "lastModifiedAt": sim.modified_ms,
    }
    if sim.group_id is not None:
        view["groupId"] = sim.group_id
    if sim.session_address is not None:
        view["ipAddress"] = sim.session_address
    return view


def sim(sim: Sim, session: SessionState | None = None) -> dict[str, Any]:
    """OpenAPI ``Sim``: the SIM with its one profile and one subscription."""
    view: dict[str, Any] = {
        "simId": sim.sim_id,
        "operatorId": sim.operator_id,
        "status": sim.status.value,
        "speedClass": sim.speed_class,
        "type": "virtual",
        "moduleType": "virtual",
        "tags": dict(sim.tags),
        "terminationEnabled": sim.termination_enabled,
        "activeProfileId": sim.iccid,
        "sessionStatus": session_status(sim, session),
        "profiles": {
            sim.iccid: {
                "iccid": sim.iccid,
                "primaryImsi": sim.imsi,
                "otaSupported": False,
                "subscribers": {
                    sim.imsi: {
                        "imsi": sim.imsi,
                        "msisdn": sim.msisdn,
                        "status": sim.status.value,
                        "subscription": SUBSCRIPTION,
                    }
                },
            }
        },
        "createdTime": sim.created_ms,
        "lastModifiedTime": sim.modified_ms,
    }
    if sim.group_id is not None:
        view["groupId"] = sim.group_id
    return view


def group(group: Group) -> dict[str, Any]:
    """OpenAPI ``Group``."""
    return {
        "groupId": group.group_id,
        "operatorId": group.operator_id,
        "tags": dict(group.tags),
        "configuration": {ns: dict(values) for ns, values in group.configuration.items()},
        "createdTime": group.created_ms,
        "lastModifiedTime": group.modified_ms,
        "createdAt": group.created_ms,
        "lastModifiedAt": group.modified_ms,
    }


def operator(operator: Operator) -> dict[str, Any]:
    """OpenAPI ``GetOperatorResponse`` (every field required)."""
    return {
        "operatorId": operator.operator_id,
        "rootOperatorId": operator.operator_id,
        "email": operator.email,
        "description": operator.description,
        "createDate": iso_time(operator.created_ms),
        "updateDate": iso_time(operator.updated_ms),
    }


def data_entry(
    entry: DataEntry, resource_type: ResourceType | None = None, resource_id: str | None = None
) -> dict[str, Any]:
    """OpenAPI ``DataEntry``; a SIM's data read as ``Sim`` is presented under the SIM's id."""
    view: dict[str, Any] = {
        "time": entry.time,
        "contentType": entry.content_type,
        "content": entry.content,
        "resourceType": (resource_type or entry.resource_type).value,
        "resourceId": resource_id or entry.resource_id,
    }
    if entry.category is not None:
        view["category"] = entry.category
    return view


def resource_metadata(meta: ResourceMetadata) -> dict[str, Any]:
    """OpenAPI ``DataResourceMetadata``."""
    return {
        "resourceType": meta.resource_type.value,
        "resourceId": meta.resource_id,
        "lastModifiedTime": meta.last_modified_ms,
        "attributeNames": list(meta.attribute_names),
    }
