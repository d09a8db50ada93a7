"""An OpenAPI fuzz run of the management API (issue 9, item 3).

Schemathesis generates calls from SORACOM's OpenAPI subset (every phase: the document's
examples, coverage of each parameter's boundaries and wrong types, random fuzzing, and stateful
sequences along links it infers from the document, such as ``createGroup`` then ``getGroup``)
and sends them to an emulator running as its own process on a free port, logged in as the
default operator. Every answer must not be a 5xx and must validate against the document, by the
same rule as :class:`tests.support.clients.ApiClient` (:func:`tests.support.openapi.validate`).

``tests/harvest/test_api_fuzz.py`` runs a short, derandomized pass in the suite. The long run::

    python -m tests.support.fuzz --examples 1000

prints the counts (API calls the emulator answered, 5xx, answers that did not validate) and each
failure with a curl command that reproduces it; it exits non-zero on any. docs/fuzzing.md has
the last result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import schemathesis
from schemathesis.engine import events, from_schema

from tests.support import openapi, process
from tests.support.clients import DEFAULT_KEY, DEFAULT_KEY_ID

#: Declared operations the emulator does not serve: Harvest Files (its own host, 501 there),
#: SORA Cam and the exports. Fuzzing them would only exercise the router's 404 and 405;
#: ``test_api_fuzz.py`` checks once that each answers a clean 4xx instead.
NOT_SERVED = re.compile(r"\A/sora_cam(/|\Z)|/export\Z")
#: ``logout`` revokes the run's own token: every later call would be a 401.
NOT_FUZZED = ("logout",)

#: The emulator clock, frozen for the run (2023-11-14T22:13:20Z), so bills, stats and retention
#: answer the same on every run.
NOW_MS = 1_700_000_000_000
DEFAULT_IMSI = "001010000000001"
DEFAULT_OPERATOR = "OP0000000000"
#: One entry the default SIM writes before the run, so single-entry reads can find something.
ENTRY_TIME_MS = NOW_MS - 60_000

#: Integers worth trying wherever the document asks for one (a fuzzing dictionary): the edges of
#: what the code represents (int64, datetime's years 1 to 9999 in seconds and milliseconds,
#: UNIX time 0) and times near the frozen clock. Schemathesis mixes them into its own draws.
EDGE_INTEGERS: tuple[int, ...] = (
    0,
    -1,
    1,
    2**31 - 1,
    2**32,
    253_402_300_799,  # 9999-12-31T23:59:59Z in seconds
    253_402_300_800,  # year 10000
    253_402_300_799_999,  # the same in milliseconds
    253_402_300_800_000,
    -62_135_596_800,  # 0001-01-01T00:00:00Z in seconds
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    NOW_MS // 1000,
    NOW_MS,
    ENTRY_TIME_MS,
)
#: ``yyyyMM`` values: the first and last months a calendar can name (0001-01, 9999-12), year 0
#: and month 13 just outside, and the frozen clock's month (the one with charges) with its
#: neighbours.
EDGE_MONTHS = ("000001", "000101", "999912", "000013", "202311", "202310", "202312")

#: Examples per operation in the suite: about 45 s on the 2-core machine, the budget of a
#: test run's minute. The long run takes ``--examples``.
IN_SUITE_EXAMPLES = 80
SEED = 9


@dataclass
class Tally:
    """What the contract check saw in one run. Module state, because schemathesis registers a
    check once per process; :func:`run` resets it."""

    responses: int = 0
    invalid: int = 0


TALLY = Tally()


def _checked_call(response: schemathesis.Response) -> tuple[str, str, dict[str, str]]:
    """The method, path and query of the request actually sent (after serialization)."""
    request = response.request
    url = urlsplit(str(request.url))
    return str(request.method), url.path, dict(parse_qsl(url.query, keep_blank_values=True))


@schemathesis.check
def soracom_contract(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """The answer validates against the document, as every ``ApiClient`` answer must."""
    TALLY.responses += 1
    method, path, query = _checked_call(response)
    content_type = response.headers.get("content-type", [""])[0].split(";")[0]
    try:
        openapi.validate(method, path, query, response.status_code, content_type, response.content)
    except openapi.ContractError:
        TALLY.invalid += 1
        raise
    return None


@dataclass
class Report:
    """The outcome of one run. ``calls`` and ``server_errors`` are the emulator's own counts
    (``harvest_api_requests_total``), so they hold even for a call schemathesis did not check."""

    calls: int = 0
    server_errors: int = 0
    responses_checked: int = 0
    invalid_responses: int = 0
    #: One line per distinct failure schemathesis kept (after shrinking), with a curl command.
    failures: list[str] = field(default_factory=list)
    #: Errors of the run itself (a check that crashed, a schema it could not use).
    errors: list[str] = field(default_factory=list)
    #: Answers by operation (SORACOM's operationId) and status.
    by_operation: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Log lines of the emulator's internal errors, with their tracebacks.
    server_log: list[str] = field(default_factory=list)
    #: How each phase ended, every time it did (fuzzing and stateful may take several turns).
    phases: dict[str, list[str]] = field(default_factory=dict)
    #: Links between operations the stateful phase followed (inferred from the document).
    links: int = 0
    stop_reason: str = ""
    seconds: float = 0.0

    def problems(self) -> list[str]:
        """Everything that makes the run fail: empty when it passed."""
        found = list(self.failures) + list(self.errors)
        if self.server_errors:
            found.append(f"{self.server_errors} 5xx answer(s); emulator log:")
            found.extend(self.server_log)
        return found

    def summary(self) -> str:
        return (
            f"{self.calls} API calls, {self.server_errors} 5xx, "
            f"{self.invalid_responses} answers that did not validate "
            f"({self.responses_checked} checked), {len(self.failures)} distinct failures, "
            f"{len(self.errors)} run errors, {self.links} stateful links, "
            f"in {self.seconds:.0f} s ({self.stop_reason})"
        )


def _request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    request.method = method
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
        return json.loads(raw) if raw else None


def prepare(base_url: str) -> dict[str, str]:
    """Freeze the clock, write one entry, log in: answers the API headers for the run."""
    _request("PUT", base_url + "/_emulator/clock", {"now": NOW_MS, "frozen": True})
    device = urllib.request.Request(
        base_url + "/",
        data=b'{"fuzz":1}',
        headers={"Content-Type": "application/json", "X-Soracom-Timestamp": str(ENTRY_TIME_MS)},
        method="POST",
    )
    with urllib.request.urlopen(device, timeout=10) as answer:
        assert answer.status == 201
    login = _request(
        "POST", base_url + "/v1/auth", {"authKeyId": DEFAULT_KEY_ID, "authKey": DEFAULT_KEY}
    )
    return {"X-Soracom-API-Key": login["apiKey"], "X-Soracom-Token": login["token"]}


def config(
    base_url: str, headers: dict[str, str], *, examples: int, seed: int
) -> schemathesis.Config:
    """The schemathesis configuration of a run, written as its ``schemathesis.toml`` keys."""
    sim = _request("GET", f"{base_url}/v1/subscribers/{DEFAULT_IMSI}", headers=headers)
    return schemathesis.Config.from_dict(
        {
            "seed": seed,
            "base-url": base_url + "/v1",
            "headers": headers,
            "workers": 1,
            "generation": {
                "max-examples": examples,
                "deterministic": True,
                # no .hypothesis directory: a run replays nothing from an earlier one
                "database": "none",
                "dictionaries": {"integer": {"dictionary": "edges", "probability": 0.2}},
            },
            "dictionaries": {
                "edges": {"values": list(EDGE_INTEGERS)},
                "months": {"values": list(EDGE_MONTHS)},
                "imsis": {"values": [DEFAULT_IMSI]},
                "operators": {"values": [DEFAULT_OPERATOR]},
                "sims": {"values": [sim["simId"]]},
                "resources": {"values": [DEFAULT_IMSI, sim["simId"]]},
                "times": {"values": [ENTRY_TIME_MS]},
                "parameter_names": {"values": ["enabled"]},
            },
            # The known resources, often enough that calls get past the 404 to the logic.
            "parameters": {
                "path.imsi": {"dictionary": "imsis", "probability": 0.6},
                "path.operator_id": {"dictionary": "operators", "probability": 0.8},
                "path.sim_id": {"dictionary": "sims", "probability": 0.6},
                "path.resource_id": {"dictionary": "resources", "probability": 0.6},
                "path.time": {"dictionary": "times", "probability": 0.5},
                "path.yyyyMM": {"dictionary": "months", "probability": 0.6},
                "path.name": {"dictionary": "parameter_names", "probability": 0.3},
                "query.year_month": {"dictionary": "months", "probability": 0.5},
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "soracom_contract": {"enabled": True},
            },
            "operations": [
                {"include-path-regex": NOT_SERVED.pattern, "enabled": False},
                *({"include-operation-id": name, "enabled": False} for name in NOT_FUZZED),
            ],
        }
    )


def _failures(recorder: Any) -> Iterator[str]:
    for checks in recorder.checks.values():
        for check in checks:
            info = check.failure_info
            if check.status.value == "failure" and info is not None:
                failure = info.failure
                yield (
                    f"{recorder.label}: {check.name}: {failure.title}. {failure.message}\n"
                    f"    {info.code_sample}"
                )


def _metrics(base_url: str) -> dict[str, dict[str, int]]:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    line_pattern = re.compile(
        r'\Aharvest_api_requests_total\{operation="([^"]*)",status="(\d+)"\} (\S+)\Z'
    )
    for line in text.splitlines():
        found = line_pattern.match(line)
        if found:
            counts[found.group(1)][found.group(2)] = int(float(found.group(3)))
    return dict(counts)


def run(base_url: str, *, examples: int, seed: int) -> Report:
    """Fuzz the emulator at ``base_url`` (its edge, without ``/v1``)."""
    headers = prepare(base_url)
    schema = schemathesis.openapi.from_dict(
        openapi.spec_dict(), config=config(base_url, headers, examples=examples, seed=seed)
    )
    report = Report()
    TALLY.responses = TALLY.invalid = 0
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted) and event.payload is not None:
            report.links = event.payload.transitions_selected
        elif isinstance(event, events.PhaseFinished):
            report.phases.setdefault(str(event.phase.name), []).append(str(event.status))
        elif isinstance(event, events.ScenarioFinished):
            report.failures.extend(_failures(event.recorder))
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = str(event.stop_reason)
    report.seconds = time.monotonic() - started
    report.responses_checked, report.invalid_responses = TALLY.responses, TALLY.invalid
    report.by_operation = _metrics(base_url)
    report.calls = sum(sum(statuses.values()) for statuses in report.by_operation.values())
    report.server_errors = sum(
        count
        for statuses in report.by_operation.values()
        for status, count in statuses.items()
        if status.startswith("5")
    )
    return report


@contextmanager
def emulator(data_dir: Path) -> Iterator[process.Process]:
    """The emulator as a user starts it, on a free port, storing in ``data_dir`` (SQLite)."""
    # No request log: the run's ten thousand lines would hide the internal errors.
    args = ["--port", "0", "--data-dir", str(data_dir), "--request-log", "off"]
    with process.running(args) as running:
        yield running


def fuzz(*, examples: int, seed: int, data_dir: Path) -> Report:
    """Start an emulator, fuzz it, and keep its internal-error log lines in the report."""
    with emulator(data_dir) as running:
        report = run(running.base_url, examples=examples, seed=seed)
        report.server_log = _internal_errors(running.output)
    return report


_LOG_RECORD = re.compile(r"\A\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _internal_errors(lines: Sequence[str]) -> list[str]:
    """The emulator's ``internal error`` log records, each with its traceback."""
    kept: list[str] = []
    inside = False
    for line in lines:
        if _LOG_RECORD.match(line):
            inside = "internal error on" in line
        if inside:
            kept.append(line)
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fuzz", description="Fuzz the emulator's /v1 API."
    )
    parser.add_argument("--examples", type=int, default=1000, help="examples per operation")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="harvest-fuzz-") as data_dir:
        report = fuzz(examples=args.examples, seed=args.seed, data_dir=Path(data_dir))
    print(f"{datetime.now(UTC):%Y-%m-%d}: examples={args.examples} seed={args.seed}")
    print(report.summary())
    for operation, statuses in sorted(report.by_operation.items()):
        print(f"  {operation}: {json.dumps(dict(sorted(statuses.items())))}")
    for problem in report.problems():
        print(problem)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
