"""Prometheus metrics at GET /metrics (issue 5, item 1), and their table in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Emulator
from tests.gateway.test_raw_listeners import tcp_exchange, udp_exchange

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

METRICS_PAGE = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


async def scrape(emulator: Emulator) -> tuple[Samples, set[str]]:
    async with emulator.client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, names


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_writes_refusals_and_api_calls_are_counted(emulator: Emulator) -> None:
    await emulator.device().send('{"a":1}')
    await emulator.device("127.0.0.99").send('{"a":1}')
    assert await udp_exchange(emulator, [b"u"]) == [b"201"]
    assert await tcp_exchange(emulator, [b"t"]) == [b"201"]
    api = await emulator.api()
    await api.get("/v1/subscribers")
    await api.get("/v1/subscribers/nope")
    samples, names = await scrape(emulator)
    for protocol in ("http", "udp", "tcp"):
        assert value(samples, "harvest_device_writes_stored_total", protocol=protocol) == 1
    assert value(samples, "harvest_device_writes_received_total", protocol="http") == 2
    assert (
        value(samples, "harvest_device_writes_refused_total", protocol="http", reason="HEM4003")
        == 1
    )
    assert (
        value(samples, "harvest_api_requests_total", operation="listSubscribers", status="200") == 1
    )
    assert (
        value(samples, "harvest_api_requests_total", operation="getSubscriber", status="404") == 1
    )
    assert value(samples, "harvest_api_requests_total", operation="auth", status="200") == 1
    assert value(samples, "harvest_device_write_duration_seconds_count", protocol="udp") == 1
    assert value(samples, "harvest_device_payload_size_bytes_count", protocol="http") == 2
    assert value(samples, "harvest_stored_bytes_total") > 0
    assert value(samples, "harvest_group_commit_batch_size_count") >= 3
    assert value(samples, "harvest_sims", status="active") == 1
    assert value(samples, "harvest_month_charges_usd", operator="OP0000000000") == 0
    assert value(samples, "harvest_bundle_writes_total", kind="included") == 3
    assert any(key[0] == "harvest_build_info" for key in samples)
    # naming: one prefix; counters end in _total; no IMSI label unless asked for
    assert all(
        name.startswith("harvest_")
        for name in names
        if not name.startswith(("python_", "process_"))
    )
    assert all("imsi" not in dict(labels) for _, labels in samples)


@pytest.mark.settings(metrics_per_sim=True, metrics_per_sim_cap=2)
async def test_per_sim_series_are_capped_and_drops_counted(emulator: Emulator) -> None:
    sims = [await emulator.new_sim() for _ in range(3)]
    for sim in sims:
        assert (await emulator.device(sim["sessionAddress"]).send('{"a":1}'))[0] == 201
    samples, _ = await scrape(emulator)
    series = [labels for name, labels in samples if name == "harvest_sim_writes_total"]
    assert len(series) == 2
    assert value(samples, "harvest_metrics_series_dropped_total") == 1


async def test_retention_sweeps_are_counted(emulator: Emulator) -> None:
    await emulator.control("PUT", "/clock", {"now": 1_800_000_000_000, "frozen": True})
    await emulator.device().send('{"a":1}', headers={"X-Soracom-Timestamp": "1799990000000"})
    await emulator.control("POST", "/clock/advance", {"seconds": 41 * 86_400})
    samples, _ = await scrape(emulator)
    assert value(samples, "harvest_entries_expired_total") == 1
    assert value(samples, "harvest_retention_sweeps_total") >= 1


@pytest.mark.settings(metrics_per_sim=True)
async def test_every_served_metric_is_in_the_metrics_page_with_its_type(
    emulator: Emulator,
) -> None:
    async with emulator.client.get("/metrics") as response:
        text = await response.text()
    served = {
        name: kind
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
        if not name.endswith("_created")  # prometheus-client's own, beside each series
    }
    assert "harvest_sim_writes_total" in served  # the optional series are served too
    documented = dict(
        re.findall(r"^\| `(harvest_\w+)` \| (\w+) \|", METRICS_PAGE, flags=re.MULTILINE)
    )
    assert served == documented
