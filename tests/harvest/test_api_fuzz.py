"""The OpenAPI fuzz test (issue 9, item 3): schemathesis against SORACOM's OpenAPI subset and an
emulator running as its own process, with every phase (examples, coverage, fuzzing, stateful
links). No answer may be a 5xx or fail to validate against the document. What it does and how
to run it longer: ``tests/support/fuzz.py`` and docs/fuzzing.md. Each of its findings is a
regression test of its own in the suite, next to the code it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import coverage
import pytest

from tests.conftest import Emulator
from tests.support import fuzz, openapi

#: The operations the run fuzzes: every one the emulator serves and the document declares.
FUZZED = {
    operation["operationId"]
    for path, item in openapi.spec_dict()["paths"].items()
    for method, operation in item.items()
    if not fuzz.NOT_SERVED.search(path) and operation["operationId"] not in fuzz.NOT_FUZZED
}
#: Operations whose every fuzzed call may be refused: the data they need to succeed is not
#: there to find (a parameter name the run never set, an entry deleted by an earlier call).
MAY_ALWAYS_REFUSE = {"deleteConfigurationParameter", "getDataEntry", "deleteDataEntry"}
#: Harvest Files: success is a 302 (getFile), there is no export to find (getExportedFile),
#: or a file or directory must exist first.
MAY_ALWAYS_REFUSE |= {
    "getFile",
    "getExportedFile",
    "getFileMetadata",
    "deleteFile",
    "deleteDirectory",
    "listFiles",
}


@contextmanager
def coverage_paused() -> Iterator[None]:
    """No coverage tracing in this process meanwhile. The emulator under test is another
    process (not measured, like every subprocess run); what runs here is schemathesis and
    Hypothesis, which the tracer would only slow down, by half."""
    measuring = coverage.Coverage.current()
    if measuring is None:
        yield
        return
    measuring.stop()
    try:
        yield
    finally:
        measuring.start()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fuzzing_the_openapi_document_meets_no_5xx_and_no_invalid_answer(tmp_path: Path) -> None:
    with coverage_paused():
        report = fuzz.fuzz(examples=fuzz.IN_SUITE_EXAMPLES, seed=fuzz.SEED, data_dir=tmp_path)
    assert report.problems() == [], "\n".join([report.summary(), *report.problems()])
    assert report.server_errors == 0
    assert report.invalid_responses == 0
    # Every phase ran, stateful sequences along the document's links included ...
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        assert set(report.phases.get(phase, ["not run"])) == {"success"}, report.phases
    assert report.links >= 50, report.summary()
    # ... the run reached the API (a token gone bad would make every answer a 401) ...
    assert report.responses_checked >= 1000, report.summary()
    assert set(report.by_operation) - {"unmatched"} == FUZZED
    # ... and got past validation into the logic of nearly every operation.
    succeeded = {
        operation
        for operation, statuses in report.by_operation.items()
        if any(status.startswith("2") for status in statuses)
    }
    assert FUZZED - succeeded <= MAY_ALWAYS_REFUSE, report.by_operation


def not_served() -> list[tuple[str, str]]:
    """(method, path template) of every operation the document declares and the run leaves out
    because the emulator does not serve it."""
    return [
        (method.upper(), path)
        for path, item in openapi.spec_dict()["paths"].items()
        for method in item
        if fuzz.NOT_SERVED.search(path)
    ]


@pytest.mark.parametrize(
    ("method", "template"), [pytest.param(m, t, id=f"{m} {t}") for m, t in not_served()]
)
async def test_what_the_emulator_does_not_serve_is_a_clean_4xx(
    emulator: Emulator, method: str, template: str
) -> None:
    # Left out of the fuzz run, so checked here once each: never a 5xx, always SORACOM's error
    # body (which ApiClient checks; a HEAD answer has no body).
    api = await emulator.api()
    path = "/v1" + re.sub(r"\{[^}]+\}", "x", template)
    body: dict[str, Any] | None = {} if method in ("POST", "PUT") else None
    reply = await api.call(method, path, json_body=body)
    assert reply.status in (404, 405), (method, path, reply.status, reply.raw)
    assert api.checked[-1] == (method, path, reply.status)


def test_the_run_leaves_out_only_what_the_emulator_does_not_serve() -> None:
    assert {t for _, t in not_served()} == {
        "/sora_cam/devices/{device_id}/data",
        "/sora_cam/devices/{device_id}/data/{time}",
        "/stats/harvest/operators/{operator_id}/export",
        "/bills/{yyyyMM}/export",
        "/bills/latest/export",
    }
    assert fuzz.NOT_FUZZED == ("logout",)
