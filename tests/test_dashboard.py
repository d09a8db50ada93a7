"""docker/: the Grafana dashboard, its provisioning and the compose file (issue 5, item 2).

The dashboard is tested against a real Prometheus server (Debian's ``prometheus`` package,
which ``.ci/run`` installs where it is missing): it scrapes a running emulator under load every
second, and every query of every panel must return data through Prometheus's HTTP API. Without
a ``prometheus`` binary that test is skipped, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from harvest.simulator import FleetConfig, ProtocolName, run_fleet
from tests.support.clients import ApiClient, Device, device_session
from tests.support.process import running

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "harvest.json"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDER = DOCKER / "grafana" / "provisioning" / "dashboards" / "provider.yaml"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"

DASHBOARD_UID = "harvest-emulator"
#: Grafana's built-in interval variables, as the test's 1 s scrape makes sense of them.
BUILT_IN = {"__rate_interval": "10s", "__interval": "5s", "__range": "1m"}
#: How long the emulator is under load before a query that returned nothing counts as failed.
QUERY_DEADLINE_S = 25.0


# --- the dashboard's shape ----------------------------------------------------------------------
def load_json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels (a collapsed row holds its own) included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every target of every panel."""
    found = []
    for panel in all_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    return found


def variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every ``label_values(metric, label)`` template variable: the query
    that has the same labels as the values Grafana offers."""
    found = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
        assert match, f"variable {variable['name']}: {text!r} is not label_values(metric, label)"
        found.append((f"variable {variable['name']!r}", f"count by ({match[2]}) ({match[1]})"))
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """A value for every template variable: its 'All' value (a regex), else one matching all."""
    values = dict(BUILT_IN)
    for variable in dashboard.get("templating", {}).get("list", []):
        values[variable["name"]] = variable.get("allValue") or ".*"
    return values


def concrete(expression: str, values: dict[str, str]) -> str:
    """The expression with Grafana's ``$name``, ``${name}``, ``${name:fmt}`` and ``[[name]]``
    replaced; an unknown variable is left as it is (and Prometheus then refuses the query)."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return re.sub(
        r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)",
        value,
        expression,
    )


def provisioned_datasource_uid() -> str:
    [source] = load_yaml(DATASOURCES)["datasources"]
    uid = source["uid"]
    assert isinstance(uid, str)
    return uid


def test_the_dashboard_has_a_fixed_uid_and_names_the_provisioned_datasource() -> None:
    dashboard = load_json(DASHBOARD)
    uid = provisioned_datasource_uid()
    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard.get("id") is None  # provisioning assigns the numeric id
    panels = list(all_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    graphs = [panel for panel in panels if panel["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        assert panel["title"], where
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid, where
            assert target["expr"].strip(), where
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]
    assert [where for where, _ in variable_queries(dashboard)] == ["variable 'protocol'"]
    # every query names only the emulator's own metrics
    names = {
        name
        for _, expression in queries(dashboard)
        for name in re.findall(r"\b(harvest_\w+)", expression)
    }
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(harvest_\w+)`", page))
    stems = {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    assert stems <= listed, f"not in docs/metrics.md's metric list: {sorted(stems - listed)}"


def test_the_issue_asks_for_these_panels() -> None:
    expressions = " ".join(expression for _, expression in queries(load_json(DASHBOARD)))
    for metric in (
        "harvest_device_writes_stored_total",  # ingest by protocol
        "harvest_device_writes_refused_total",  # refusals by reason
        "harvest_device_write_duration_seconds_bucket",  # latency percentiles
        "harvest_device_payload_size_bytes",
        "harvest_api_requests_total",
        "harvest_bundle_writes_total",  # quota use
        "harvest_bundle_exhausted_total",
        "harvest_month_charges_usd",  # charges accruing
        "harvest_entries_expired_total",  # retention
        "harvest_retention_sweeps_total",
        "harvest_sims",
        "harvest_group_commit_batch_size_bucket",
    ):
        assert metric in expressions, metric
    assert "sum by (protocol)" in expressions
    assert "sum by (reason)" in expressions
    for quantile in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(harvest_device_write" in (
            expressions
        )


def test_panels_of_collapsed_rows_are_walked_too() -> None:
    inner: dict[str, Any] = {"id": 2, "title": "inner", "targets": [{"refId": "A", "expr": "a"}]}
    outer: dict[str, Any] = {"id": 3, "title": "t", "targets": [{"refId": "B", "expr": "b"}]}
    panels: list[dict[str, Any]] = [{"id": 1, "type": "row", "panels": [inner]}, outer]
    assert [panel["id"] for panel in all_panels(panels)] == [1, 2, 3]
    assert queries({"panels": panels}) == [
        ("panel 'inner' target A", "a"),
        ("panel 't' target B", "b"),
    ]


def test_grafana_variables_are_replaced() -> None:
    values = {"protocol": ".*", "__rate_interval": "10s"}
    assert concrete('rate(x{p=~"$protocol"}[$__rate_interval])', values) == 'rate(x{p=~".*"}[10s])'
    assert concrete('x{p=~"${protocol:regex}"} [[protocol]]', values) == 'x{p=~".*"} .*'
    assert concrete("$unknown", values) == "$unknown"


# --- compose, provisioning and the image --------------------------------------------------------
def test_compose_file_parses_and_references_files_that_exist() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert set(services) >= {"emulator", "prometheus", "grafana"}
    build = services["emulator"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile for a context elsewhere
    assert DOCKERFILE.with_name("Dockerfile.dockerignore").is_file()
    mounts: dict[str, str] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"
                mounts[target] = source
            else:
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"
    ports = services["emulator"]["ports"]
    for port in ("8080:8080", "8514:8514/tcp", "8514:8514/udp", "23080:23080/udp"):
        assert port in ports
    # Prometheus reads the mounted config, which scrapes the emulator service every 5 s
    assert (DOCKER / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_CONFIG
    prometheus = load_yaml(PROMETHEUS_CONFIG)
    [job] = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["emulator:8080"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert prometheus["global"]["scrape_interval"] == "5s"
    # Grafana: provisioning mounted where Grafana reads it; the provider loads the dashboard dir
    assert (DOCKER / mounts["/etc/grafana/provisioning"]).resolve() == DATASOURCES.parents[1]
    [provider] = load_yaml(PROVIDER)["providers"]
    dashboards = (DOCKER / mounts[provider["options"]["path"]]).resolve()
    assert dashboards == DASHBOARD.parent
    [source] = load_yaml(DATASOURCES)["datasources"]
    assert source["url"] == "http://prometheus:9090"
    environment = services["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_the_image_is_non_root_with_a_health_check() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    [user] = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user.split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n.*/_emulator/health", text, re.M)
    assert "curl" not in text.split("HEALTHCHECK", 1)[1]
    assert re.search(r"^EXPOSE 8080 8514/tcp 8514/udp 23080/tcp 23080/udp$", text, re.M)
    assert re.search(r"^VOLUME /data$", text, re.M)
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    assert cmd == ["harvest-emulator", "serve", "--host", "0.0.0.0", "--data-dir", "/data"]


def test_docker_compose_config_validates_where_docker_is_present() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    if version.returncode != 0:
        said = (version.stderr or version.stdout).strip().splitlines()
        pytest.skip(f"docker has no compose plugin ({said[0] if said else version.returncode})")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- a real Prometheus --------------------------------------------------------------------------
def prometheus_tool(name: str) -> str:
    """The path of Debian's ``prometheus`` (or ``promtool``); skip without it, fail in CI."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/bin") / name,) if p.is_file() and os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        reason = f"no {name} binary: install Debian's prometheus package (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_a_missing_prometheus_skips_the_test_here_and_fails_it_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = "prometheus-that-is-not-installed"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's prometheus"):
        prometheus_tool(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install Debian's prometheus"):
        prometheus_tool(missing)


def test_prometheus_accepts_the_compose_scrape_config() -> None:
    promtool = prometheus_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def prometheus_server(binary: str, target: str, directory: Path) -> Iterator[str]:
    """Run Prometheus scraping ``target`` (host:port) every second; yield its base URL."""
    directory.mkdir()
    config = directory / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "harvest-emulator",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    address = f"127.0.0.1:{free_port()}"
    with (directory / "prometheus.log").open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        try:
            yield f"http://{address}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until_ready(session: aiohttp.ClientSession, prometheus: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(prometheus + "/-/ready") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise AssertionError("Prometheus did not get ready:\n" + read_log(log))


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


async def scrapes_up(session: aiohttp.ClientSession, prometheus: str) -> bool:
    async with session.get(prometheus + "/api/v1/targets") as response:
        body = await response.json()
    targets = body["data"]["activeTargets"]
    return bool(targets) and all(target["health"] == "up" for target in targets)


async def instant_query(
    session: aiohttp.ClientSession, prometheus: str, expression: str
) -> tuple[str, list[Any]]:
    """Prometheus's answer to an instant query: an error text ('' if none) and the result."""
    async with session.post(prometheus + "/api/v1/query", data={"query": expression}) as response:
        body = await response.json()
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    data = body["data"]
    result = data["result"]
    if data["resultType"] == "scalar":
        result = [{"value": result}]
    assert isinstance(result, list)
    return "", result


def has_a_number(result: list[Any]) -> bool:
    """Some sample is a number (a histogram_quantile over no new observations is NaN)."""
    return any(math.isfinite(float(series["value"][1])) for series in result)


# --- load: every panel's series ----------------------------------------------------------------
DAY_S = 86_400
RETENTION_DAYS = 40
BUNDLE = 2_000
#: One fleet per protocol, each with its own SIMs.
FLEETS: tuple[tuple[ProtocolName, str], ...] = (
    ("http", "001019000000000"),
    ("tcp", "001019000000100"),
    ("udp", "001019000000200"),
)


class Load:
    """Traffic that gives every panel a series, for as long as the test runs: fleets writing
    over HTTP, TCP and UDP; refusals for four reasons; API calls; an entry that retention expires
    (after a clock jump of one day); a SIM whose batch writes run past its 2,000 included writes
    (overage, one SIM-day exhausted); retention sweeps every second."""

    def __init__(self, base_url: str, raw_port: int) -> None:
        self.base_url = base_url
        self.raw_port = raw_port
        self.stop = asyncio.Event()
        self.errors: list[str] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self.replies: dict[str, int] = {}
        self.next_time = 0

    def session(self, address: str | None = None) -> aiohttp.ClientSession:
        session = device_session(address) if address else aiohttp.ClientSession()
        self.sessions.append(session)
        return session

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session().request(
            method, self.base_url + "/_emulator" + path, json=body
        ) as response:
            assert response.status < 300, (path, response.status, await response.text())
            raw = await response.read()
            return json.loads(raw) if raw else None

    async def api(self) -> ApiClient:
        return await ApiClient(self.session(), self.base_url).login()

    def note(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.replies[key] = self.replies.get(key, 0) + 1

    async def prepare(self) -> tuple[ApiClient, Device]:
        """The one-off states: an expired entry, and a SIM past its bundle. Returns a logged-in
        API client and the batch-writing device."""
        now = (await self.control("GET", "/clock"))["now"]
        default = Device(self.session("127.0.0.1"), self.base_url, "127.0.0.1")
        old = now - (RETENTION_DAYS * DAY_S - 3_600) * 1000  # expires within the next hour
        reply = await default.send('{"old":true}', headers={"X-Soracom-Timestamp": str(old)})
        assert reply[0] == 201, reply
        await self.control("POST", "/clock/advance", {"seconds": DAY_S})  # tokens expire too
        api = await self.api()
        group = await api.call("POST", "/v1/groups", json_body={"tags": {"name": "batch"}})
        assert group.status == 201, group.raw
        group_id = group.json["groupId"]
        configured = await api.call(
            "PUT",
            f"/v1/groups/{group_id}/configuration/SoracomHarvest",
            json_body=[
                {"key": "enabled", "value": True},
                {
                    "key": "customTimestamp",
                    "value": {
                        "type": "jsonpointer",
                        "value": "/t",
                        "format": "unixtime-milliseconds",
                    },
                },
                {"key": "batchWrite", "value": {"enabled": True, "pointer": ""}},
            ],
        )
        assert configured.status == 200, configured.raw
        sim = await self.control("POST", "/sims", {"groupId": group_id})
        batcher = Device(self.session(sim["sessionAddress"]), self.base_url, sim["sessionAddress"])
        now = (await self.control("GET", "/clock"))["now"]
        self.next_time = now - BUNDLE * 2
        for _ in range(BUNDLE // 100 + 1):
            reply = await self.batch(batcher, 100)
            assert reply[0] == 201, reply
        return api, batcher

    async def batch(self, device: Device, count: int) -> tuple[int, bytes]:
        elements = [{"t": self.next_time + i, "v": i} for i in range(count)]
        self.next_time += count
        return await device.send(json.dumps(elements, separators=(",", ":")))

    async def trickle(self, api: ApiClient, batcher: Device) -> None:
        """Until stopped: refusals, overage, API calls, a few times a second."""
        default = Device(self.session("127.0.0.1"), self.base_url, "127.0.0.1")
        stranger = Device(self.session("127.0.0.250"), self.base_url, "127.0.0.250")
        while not self.stop.is_set():
            self.note("no SIM (HEM4003)", (await stranger.send('{"who":"?"}'))[0])
            self.note("too large (HEM4004)", (await default.send("x" * 9000, "text/plain"))[0])
            self.note("bad JSON (HEM4006)", (await default.send("{nope"))[0])
            self.note("empty batch (HEM4010)", (await batcher.send("[]"))[0])
            self.note("overage batch", (await self.batch(batcher, 5))[0])
            self.note("list_subscribers", (await api.call("GET", "/v1/subscribers")).status)
            self.note("404", (await api.call("GET", "/v1/subscribers/001019999999999")).status)
            self.note(
                "data", (await api.call("GET", "/v1/subscribers/001010000000001/data")).status
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.2)

    async def fleet(self, protocol: ProtocolName, imsi_base: str) -> None:
        config = FleetConfig(
            endpoint=self.base_url,
            protocol=protocol,
            sims=2,
            rate=25,
            duration=120,
            imsi_base=imsi_base,
            harvest_port=self.raw_port,
            timeout=5,
        )
        summary = await run_fleet(config, stop=self.stop)
        if summary.stored == 0:
            self.errors.append(f"the {protocol} fleet stored nothing: {summary}")

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


@contextlib.asynccontextmanager
async def under_load(base_url: str) -> AsyncIterator[Load]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url + "/_emulator/health") as response,
    ):
        health = await response.json()
    raw_port = int(health["listeners"]["harvest-udp"][0].rsplit(":", 1)[1])
    load = Load(base_url, raw_port)
    tasks: list[asyncio.Task[None]] = []
    try:
        api, batcher = await load.prepare()
        tasks.append(asyncio.create_task(load.trickle(api, batcher)))
        for protocol, base in FLEETS:
            tasks.append(asyncio.create_task(load.fleet(protocol, base)))
        yield load
    finally:
        load.stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await load.close()
    failures = [repr(result) for result in results if isinstance(result, BaseException)]
    assert not failures, failures
    assert not load.errors, load.errors


async def unanswered(
    session: aiohttp.ClientSession,
    prometheus: str,
    expressions: list[tuple[str, str]],
    until: float,
) -> dict[str, str]:
    """Ask every expression until each has returned a number, or ``until`` (monotonic) passes;
    what is left: where -> the expression and Prometheus's last answer."""
    pending = dict(expressions)
    answers: dict[str, str] = {}
    while True:
        for where, expression in list(pending.items()):
            error, result = await instant_query(session, prometheus, expression)
            if error:
                answers[where] = error
            elif not result:
                answers[where] = "no data"
            elif not has_a_number(result):
                answers[where] = f"only NaN: {result}"
            else:
                del pending[where]
        if not pending or time.monotonic() > until:
            return {where: f"{pending[where]}\n    -> {answers[where]}" for where in pending}
        await asyncio.sleep(1)


async def sample_values(
    session: aiohttp.ClientSession, prometheus: str, expression: str, label: str = ""
) -> dict[str, float]:
    """The instant vector of ``expression`` as {value of ``label``: sample}."""
    error, result = await instant_query(session, prometheus, expression)
    assert not error, error
    return {series["metric"].get(label, ""): float(series["value"][1]) for series in result}


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_every_dashboard_query_returns_data_from_a_real_prometheus(tmp_path: Path) -> None:
    binary = prometheus_tool("prometheus")
    dashboard = load_json(DASHBOARD)
    values = variables(dashboard)
    expressions = [(where, concrete(expr, values)) for where, expr in queries(dashboard)]
    expressions += variable_queries(dashboard)
    arguments = [
        "--port=0",
        f"--data-dir={tmp_path / 'data'}",  # SQLite: group commit (--memory has none)
        "--no-rate-limits",
        "--max-payload-bytes=8192",  # a batch of 100 elements
        "--retention-sweep-interval=1",
        "--log-level=warning",
    ]
    with (
        running(arguments) as emulator,
        prometheus_server(binary, emulator.base_url.removeprefix("http://"), tmp_path / "p") as url,
    ):
        async with aiohttp.ClientSession() as session:
            await until_ready(session, url, tmp_path / "p" / "prometheus.log")
            async with under_load(emulator.base_url) as load:
                loaded = time.monotonic()
                while not await scrapes_up(session, url):
                    assert time.monotonic() - loaded < 10, "Prometheus never scraped the emulator"
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3)  # rate() over 10 s needs two scrapes of a new series
                failed = await unanswered(session, url, expressions, loaded + QUERY_DEADLINE_S)
                assert not failed, (
                    "\n".join(f"{where}: {answer}" for where, answer in failed.items())
                    + f"\nthe load's replies: {load.replies}"
                )
                # the series the load was there to make, with the labels the panels show
                window = BUILT_IN["__rate_interval"]
                ingest = await sample_values(
                    session,
                    url,
                    f"sum by (protocol) (rate(harvest_device_writes_stored_total[{window}]))",
                    "protocol",
                )
                assert all(ingest.get(p, 0) > 0 for p in ("http", "tcp", "udp")), ingest
                refused = await sample_values(
                    session, url, "sum by (reason) (harvest_device_writes_refused_total)", "reason"
                )
                assert {"HEM4003", "HEM4004", "HEM4006", "HEM4010"} <= refused.keys(), refused
                bundle = await sample_values(
                    session, url, "sum by (kind) (harvest_bundle_writes_total)", "kind"
                )
                assert bundle.get("overage", 0) > 0, bundle
                assert bundle.get("included", 0) >= BUNDLE, bundle
                for counter in ("harvest_bundle_exhausted_total", "harvest_entries_expired_total"):
                    assert (await sample_values(session, url, counter))[""] >= 1, counter
