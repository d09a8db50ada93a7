"""What a CI suite does, end to end, with default settings (issue 8, "Done when").

Written as a user's test suite is: the ``harvest_emulator`` fixture of the pytest plugin, its
synchronous helpers, a frozen clock. Each step here failed before issue 8 with default settings:
the 1,001st write met the rate ceiling, a group option changed under the frozen clock did not
take effect, and a suspended SIM got a polite ``403`` instead of the network's silence.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from harvest.testing import HarvestEmulator

T0 = int(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp() * 1000)


def test_what_a_ci_suite_does(harvest_emulator: HarvestEmulator) -> None:
    h = harvest_emulator
    h.clock_freeze(T0)
    h.login_default()  # a token of the frozen clock's day
    group_id = h.api.get(f"/subscribers/{h.default_imsi}").body["groupId"]

    # 2,005 writes from one SIM in a loop, each a millisecond apart in entry time
    for n in range(1000):
        assert h.send({"n": n}, timestamp=T0 - 2005 + n).status == 201, n
    # a group option changed and used between writes, in the same frozen millisecond
    status, _ = h.api.put(
        f"/groups/{group_id}/configuration/SoracomHarvest",
        [{"key": "category", "value": "after-1000"}],
    )
    assert status == 200
    for n in range(1000, 2005):
        assert h.send({"n": n}, timestamp=T0 - 2005 + n).status == 201, n

    entries = h.entries(h.default_imsi, **{"from": 0})
    assert len(entries) == 2005
    assert entries[999].get("category") is None
    assert entries[1000]["category"] == "after-1000"

    # the bill shows the 5 writes past the 2,000 included: 5 x 0.00004 = 0.0002 -> 0.01 for
    # the SIM-day; the day's 0.05 option fee is inside the 1.55 free tier
    quota = h.control("GET", f"/sims/{h.default_imsi}/quota").body
    assert (quota["used"], quota["overage"]) == (2005, 5)
    _, summaries = h.api.get("/bills/summaries/bill_items")
    [march] = summaries
    lines = {item["billItemName"]: item["amount"] for item in march["costBreakdownList"]}
    assert lines["Harvest Data write requests"] == 0.01
    assert h.api.get("/bills/latest").body["amount"] == 0.01
    [stats] = h.api.get(
        f"/stats/harvest/subscribers/{h.default_imsi}",
        **{"from": T0 // 1000, "to": T0 // 1000, "period": "day"},
    ).body
    assert stats["harvestStatsMap"]["write"]["count"] == 2005

    # a suspended SIM: its device hears nothing back on any protocol ...
    sim = h.create_sim(status="suspended")
    with pytest.raises(ConnectionError):
        h.send({"x": 1}, imsi=sim["imsi"])
    assert h.send_tcp(b"x", imsi=sim["imsi"]) == ""
    with pytest.raises(socket.timeout):
        h.send_udp(b"x", imsi=sim["imsi"], timeout=0.5)
    # ... while GET /v1/logs says why, once per attempt
    _, logs = h.api.get("/logs", resource_id=sim["imsi"])
    assert sorted(entry["body"]["protocol"] for entry in logs) == ["http", "tcp", "udp"]
    assert {entry["body"]["code"] for entry in logs} == {"HEM4007"}
    assert all("suspended" in entry["body"]["message"] for entry in logs)
    assert h.entries(sim["imsi"]) == []
    assert h.sim(sim["imsi"])["status"] == "suspended"
