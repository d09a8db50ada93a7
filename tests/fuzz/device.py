"""A seeded device fuzzer: random inputs over HTTP, TCP and UDP against a running emulator
(issue 9, item 4).

Every input comes from one ``random.Random(seed)``, so a run is reproducible. Inputs mix what
firmware sends with what a broken or hostile device sends: valid and invalid JSON, nesting as
deep as the size limit allows, lone surrogates, binary, empty and oversized bodies, odd content
types, timestamps that are negative, huge or not numbers, device host names, odd paths, other
methods, and bytes on the HTTP port that are not HTTP; from SIMs in every state and from
addresses with no SIM. What must hold:

- no answer is a 5xx (over TCP and UDP: no reply starting with ``5``);
- a SIM without a data session never gets an answer (spec B12);
- every ``201`` is stored: the emulator's stored-writes counter equals the ``201`` answers per
  protocol, and each SIM's write count for the day equals its ``201`` answers (the clock is
  frozen, so every write is on one day);
- afterwards every SIM's data reads back through the API, page by page.

The emulator's own output is checked for tracebacks by the caller (it owns the process).

Long run (figures in docs/fuzzing.md)::

    python -m tests.fuzz.device --count 1000000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.process import Process, running

IMSI = "001010000000001"
T0 = 1_800_000_000_000
_RAW_LINE = re.compile(r"^\s*(Harvest|Unified) TCP/UDP\s+tcp://\S+:(\d+)\s+udp://\S+:(\d+)")

DEVICE_HOSTS = ("harvest.soracom.io", "uni.soracom.io", "unified.soracom.io")
#: What each kind of SIM answers: a SIM without a session is silent.
SIM_KINDS = ("active", "active", "active", "no-group", "harvest-off", "suspended", "barred")


@dataclass
class Target:
    base_url: str
    harvest_port: int
    unified_port: int


@dataclass
class Report:
    """What a run sent and got."""

    inputs: int = 0
    by_protocol: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    created: Counter[tuple[str, str]] = field(default_factory=Counter)  # (protocol, imsi)
    silent: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(message)

    def summary(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "by_protocol": dict(self.by_protocol),
            "statuses": dict(sorted(self.statuses.items())),
            "stored": sum(self.created.values()),
            "no_reply": self.silent,
            "failures": len(self.failures),
        }


# --- inputs ----------------------------------------------------------------------------------
def body(rng: random.Random) -> bytes:
    kind = rng.randrange(12)
    if kind == 0:
        return json.dumps({"t": rng.random(), "n": rng.randrange(10**9)}).encode()
    if kind == 1:
        return b"{" + bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    if kind == 3:
        depth = rng.randrange(1, 2000)
        return b"[" * depth + b"]" * (depth if rng.random() < 0.5 else 0)
    if kind == 4:
        return b""
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.choice((1023, 1024, 1025, 1500))))
    if kind == 6:
        return b'{"s":"\\ud800","k":"\\udfff"}'
    if kind == 7:
        return json.dumps({"time": rng.choice(["2026-01-01T00:00:00Z", "x", -1, 1e308])}).encode()
    if kind == 8:
        return "ünïcødé ✓ 温度".encode() * rng.randrange(1, 20)
    if kind == 9:
        return json.dumps([{"t": i} for i in range(rng.randrange(120))]).encode()
    if kind == 10:
        return b"9" * rng.randrange(1, 400)
    return b"\x00" * rng.randrange(1, 64)


def headers(rng: random.Random) -> dict[str, str]:
    sent: dict[str, str] = {}
    content_type = rng.choice(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/octet-stream",
            "application/vnd.x+json",
            "text/csv",
            "x/y",
            "",
            None,
        ]
    )
    if content_type is not None:
        sent["Content-Type"] = content_type
    stamp = rng.choice(
        [None, None, str(T0 - rng.randrange(10**6)), "-1", "9223372036854775807",
         "9223372036854775808", "1.5", "abc", "", "²", str(10**30)]
    )  # fmt: skip
    if stamp is not None:
        sent["X-Soracom-Timestamp"] = stamp
    host = rng.choice([None, None, "harvest.soracom.io", "uni.soracom.io:80", "api.soracom.io"])
    if host is not None:
        sent["Host"] = host
    return sent


# --- one run ---------------------------------------------------------------------------------
CREDENTIALS = {"authKeyId": "keyId-harvest-emulator", "authKey": "secret-harvest-emulator"}
HARVEST_OFF = {"tags": {"name": "off"}, "configuration": {"SoracomHarvest": {"enabled": False}}}


async def login(session: aiohttp.ClientSession, target: Target) -> dict[str, str]:
    """The default operator's API headers."""
    async with session.post(f"{target.base_url}/v1/auth", json=CREDENTIALS) as reply:
        token = await reply.json()
    return {"X-Soracom-API-Key": token["apiKey"], "X-Soracom-Token": token["token"]}


async def provision(
    session: aiohttp.ClientSession, target: Target, count: int
) -> list[dict[str, str]]:
    """``count`` SIMs of every kind (their ``kind`` key says which); the first is the default
    SIM. The clock is frozen so that every write falls on one UTC day."""
    clock = {"now": T0, "frozen": True}
    async with session.put(f"{target.base_url}/_emulator/clock", json=clock) as r:
        assert r.status == 200
    api = await login(session, target)
    async with session.post(f"{target.base_url}/v1/groups", json=HARVEST_OFF, headers=api) as r:
        off_group = (await r.json())["groupId"]
    sims = [{"imsi": IMSI, "sessionAddress": "127.0.0.1", "kind": "active"}]
    for n in range(1, count):
        kind = SIM_KINDS[n % len(SIM_KINDS)]
        fields: dict[str, Any] = {}
        if kind == "no-group":
            fields["groupId"] = None
        elif kind == "harvest-off":
            fields["groupId"] = off_group
        elif kind == "suspended":
            fields["status"] = "suspended"
        async with session.post(f"{target.base_url}/_emulator/sims", json=fields) as r:
            assert r.status == 201, await r.text()
            sim = await r.json()
        if kind == "barred":
            async with session.post(f"{target.base_url}/_emulator/sims/{sim['imsi']}/block") as r:
                assert r.status == 200
        sims.append({"imsi": sim["imsi"], "sessionAddress": sim["sessionAddress"], "kind": kind})
    return sims


def _silent(sim: dict[str, str] | None) -> bool:
    return sim is not None and sim["kind"] in ("suspended", "barred")


async def send_http(
    rng: random.Random, target: Target, sim: dict[str, str] | None, source: str, report: Report
) -> None:
    method = rng.choice(["POST"] * 8 + ["PUT", "GET"])
    path = rng.choice(["/", "/", "/v1/data", "/_unified", "/_unified/x", "/a/%ff", "/x?y=z"])
    sent = headers(rng)
    host = sent.get("Host", "").partition(":")[0]
    # the API answers every address; a device request from a SIM without a session, nothing
    device = host in DEVICE_HOSTS or not path.startswith(("/v1", "/_emulator", "/metrics"))
    sim = sim if device else None
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, target.base_url + path, data=body(rng), headers=sent) as reply,
        ):
            await reply.read()
            status = reply.status
    except aiohttp.ServerDisconnectedError:
        if _silent(sim):
            report.silent += 1
            return
        report.fail(f"http: no reply from the emulator to {source} ({sim})")
        return
    report.statuses[f"http {status}"] += 1
    if _silent(sim):
        report.fail(f"http: a SIM without a session got {status}")
    if status >= 500:
        report.fail(f"http {method} {path} from {source}: {status}")
    if status == 201 and sim is not None:
        report.created[("http", sim["imsi"])] += 1


async def send_udp(
    rng: random.Random, target: Target, sim: dict[str, str] | None, source: str, report: Report
) -> None:
    # A plain socket: asyncio's datagram transports do not send empty datagrams.
    loop = asyncio.get_running_loop()
    port = rng.choice([target.harvest_port, target.unified_port])
    payload = body(rng)[:65000]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((source, 0))
        await loop.sock_sendto(sock, payload, ("127.0.0.1", port))
        try:
            reply, _ = await asyncio.wait_for(
                loop.sock_recvfrom(sock, 65535), 0.15 if _silent(sim) else 10
            )
        except TimeoutError:
            if _silent(sim):
                report.silent += 1
            else:
                report.fail(f"udp: no reply to {len(payload)} bytes from {source} ({sim})")
            return
    record_raw("udp", reply, sim, report)


def record_raw(protocol: str, reply: bytes, sim: dict[str, str] | None, report: Report) -> None:
    text = reply.decode("utf-8", "replace")
    status = (
        text[:3]
        if not text.startswith("{")
        else str(json.loads(text)["body"]["detail"]["harvest"]["statusCode"])
    )
    report.statuses[f"{protocol} {status}"] += 1
    if _silent(sim):
        report.fail(f"{protocol}: a SIM without a session got {text!r}")
    if status.startswith("5"):
        report.fail(f"{protocol}: {text!r}")
    if status == "201" and sim is not None:
        report.created[(protocol, sim["imsi"])] += 1


async def send_tcp(
    rng: random.Random, target: Target, sim: dict[str, str] | None, source: str, report: Report
) -> None:
    port = rng.choice([target.harvest_port, target.unified_port])
    messages = [body(rng) or b"x" for _ in range(rng.randrange(1, 4))]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except OSError as error:
        report.fail(f"tcp: cannot connect from {source}: {error}")
        return
    try:
        for message in messages:
            report.inputs += 1
            report.by_protocol["tcp"] += 1
            try:
                writer.write(message)
                await writer.drain()
                reply = await asyncio.wait_for(reader.read(4096), 10)
            except (ConnectionError, TimeoutError):
                reply = b""
            if not reply:
                if _silent(sim):
                    report.silent += 1
                elif len(message) > 1024:
                    report.statuses["tcp closed"] += 1  # cut after the 413 it was sent
                else:
                    report.fail(f"tcp: connection closed without a reply from {source} ({sim})")
                return
            record_raw("tcp", reply, sim, report)
            if reply.startswith(b"413"):
                return  # the emulator hangs up after an oversized message
            await asyncio.sleep(0)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


RAW_REQUESTS = (
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
    b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
    b"POST / HTTP/9.9\r\n\r\n",
    b"\r\n\r\n\r\n",
    b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"POST / HTTP/1.1\r\nHost: harvest.soracom.io\r\nContent-Length: 3\r\n\r\n{}}",
)


async def send_raw_http(
    rng: random.Random, target: Target, sim: dict[str, str] | None, source: str, report: Report
) -> None:
    """Bytes that are not (quite) HTTP on the edge port: a 4xx or a closed connection, never a
    5xx or a traceback."""
    host, _, port = target.base_url.removeprefix("http://").rpartition(":")
    message = rng.choice(RAW_REQUESTS)
    if rng.random() < 0.3:
        message = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    try:
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    except OSError as error:
        report.fail(f"raw http: cannot connect from {source}: {error}")
        return
    try:
        writer.write(message)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(64), 10)
    except (ConnectionError, TimeoutError):
        reply = b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = reply[9:12].decode("ascii", "replace") if reply.startswith(b"HTTP/") else "closed"
    report.statuses[f"raw-http {status}"] += 1
    if status.startswith("5"):
        report.fail(f"raw http {message[:40]!r}: {reply[:60]!r}")


async def fuzz(target: Target, count: int, seed: int, sims: int = 14) -> Report:
    """Send ``count`` random device inputs from a fleet of ``sims`` SIMs (and unknown
    addresses); then check the emulator's counters and read every SIM's data back."""
    rng = random.Random(seed)
    report = Report()
    async with aiohttp.ClientSession() as session:
        fleet = await provision(session, target, sims)
    unknown = [f"127.0.9.{n}" for n in range(1, 5)]
    while report.inputs < count:
        batch = []
        for _ in range(min(32, count - report.inputs)):
            sim = rng.choice(fleet) if rng.random() < 0.9 else None
            source = sim["sessionAddress"] if sim is not None else rng.choice(unknown)
            protocol = rng.choices(["http", "udp", "tcp", "raw-http"], [4, 4, 2, 1])[0]
            if protocol != "tcp":
                report.inputs += 1
                report.by_protocol[protocol] += 1
            sender = {
                "http": send_http, "udp": send_udp, "tcp": send_tcp, "raw-http": send_raw_http,
            }[protocol]  # fmt: skip
            batch.append(sender(random.Random(rng.random()), target, sim, source, report))
        await asyncio.gather(*batch)
    await check_store(target, fleet, report)
    return report


async def check_store(target: Target, fleet: list[dict[str, str]], report: Report) -> None:
    """The counters agree with the 201s; every SIM's data reads back, page by page."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{target.base_url}/metrics") as r:
            metrics = await r.text()
        for protocol in ("http", "tcp", "udp"):
            found = re.search(
                rf'^harvest_device_writes_stored_total{{protocol="{protocol}"}} (\S+)$',
                metrics,
                re.MULTILINE,
            )
            stored = int(float(found.group(1))) if found else 0
            answered = sum(n for (p, _), n in report.created.items() if p == protocol)
            # a 201 may stand for a batch of elements; never fewer stored than answered
            if stored < answered:
                report.fail(f"{protocol}: {answered} answered 201 but {stored} stored")
        api = await login(session, target)
        for sim in fleet:
            async with session.get(f"{target.base_url}/_emulator/sims/{sim['imsi']}/quota") as r:
                used = (await r.json())["used"]
            answered = sum(n for (_, imsi), n in report.created.items() if imsi == sim["imsi"])
            if used < answered:
                report.fail(f"SIM {sim['imsi']}: {answered} writes answered 201, {used} counted")
            key = None
            for _ in range(10_000):
                query: dict[str, Any] = {"from": 0, "to": 2**62, "limit": 1000}
                if key is not None:
                    query["last_evaluated_key"] = key
                url = f"{target.base_url}/v1/subscribers/{sim['imsi']}/data"
                async with session.get(url, params=query, headers=api) as r:
                    if r.status != 200:
                        report.fail(f"reading SIM {sim['imsi']}: {r.status}")
                        break
                    for entry in await r.json():
                        if not isinstance(entry.get("content"), str):
                            report.fail(f"SIM {sim['imsi']}: entry without text content")
                    key = r.headers.get("x-soracom-next-key")
                if key is None:
                    break


def target_of(process: Process) -> Target:
    ports: dict[str, int] = {}
    for line in process.banner:
        found = _RAW_LINE.match(line)
        if found:
            ports[found.group(1).lower()] = int(found.group(2))
    return Target(process.base_url, ports["harvest"], ports["unified"])


#: How the fuzzed emulator runs: no request log and only warnings and errors, so its output
#: stays small and every ERROR line or traceback is seen.
SERVE_ARGS = ("--port", "0", "--request-log", "off", "--log-level", "warning")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.device", description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=Path(".harvest-fuzz"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    with running([*SERVE_ARGS, "--data-dir", str(args.data_dir)]) as process:
        report = asyncio.run(fuzz(target_of(process), args.count, args.seed))
        time.sleep(0.5)  # let the last log lines through the pipe
        errors = process.error_count
        for line in process.errors[:20]:
            print("LOGGED", line, file=sys.stderr)
    summary = report.summary()
    summary["seed"] = args.seed
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["errors_logged"] = errors
    print(json.dumps(summary, indent=2))
    for failure in report.failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if report.failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
