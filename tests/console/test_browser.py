"""The web console in a real browser (issue 14): Debian's Chromium, driven by Playwright, against
an emulator started as a user starts it (``python -m harvest serve``), over real HTTP.

One browser and one emulator serve the whole module; each test gets a fresh browser context
and a reset emulator. Every test fails if the page logged a script error.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import process
from tests.support.browser import (
    DESKTOP,
    PHONE,
    Watched,
    api_headers,
    call,
    chromium_path,
    control,
    launch,
    put_file,
    watch,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
IMSI = "001010000000001"
#: 2026-03-10T09:00:00Z
T0 = 1_773_133_200_000
LIVE_S = 5  # "appears within a few seconds"

# Without playwright the browser fixture skips (fails in CI) with the reason.
with contextlib.suppress(ImportError):
    from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def emulator() -> Iterator[process.Process]:
    with process.running(["--memory", "--port", "0"]) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = launch(playwright, executable)
        yield launched
        launched.close()


@pytest.fixture
def base(emulator: process.Process) -> str:
    control(emulator.base_url, "POST", "/reset")
    return emulator.base_url


def open_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Iterator[Watched]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    watched = watch(context.new_page())
    try:
        yield watched
    finally:
        context.close()
    assert watched.errors == [], watched.errors


@pytest.fixture
def watched(browser: Browser, base: str) -> Iterator[Watched]:
    yield from open_page(browser)


@pytest.fixture
def page(watched: Watched) -> Page:
    return watched.page


def console(page: Page, base: str, route: str = "") -> None:
    page.goto(f"{base}/console/#/{route}")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("main h1")).to_be_visible()


def readme_curl(base: str) -> list[str]:
    """The README's device write, word for word, pointed at this emulator."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"^\s*\$ (curl -i -H 'Content-Type: application/json' -d .*)$", readme, re.M)
    assert found, "the README's curl write"
    return [word.replace("http://127.0.0.1:8080", base) for word in shlex.split(found.group(1))]


# --- the "done when" ----------------------------------------------------------------------
def test_open_the_root_click_the_sim_curl_and_see_the_point(page: Page, base: str) -> None:
    """A new user opens the emulator's address, lands on the console, clicks the default SIM,
    runs the README's curl write and sees the point appear on the chart without reloading."""
    page.goto(base + "/")
    assert page.url == base + "/console/"
    expect(page.locator("main h1")).to_have_text("Overview")
    page.get_by_role("link", name=IMSI).first.click()
    expect(page.locator("main h1")).to_have_text(f"SIM {IMSI}")
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#chart")).to_contain_text("No numeric values")

    command = readme_curl(base)
    if shutil.which("curl"):
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        assert done.stdout.startswith("HTTP/1.1 201"), done.stdout + done.stderr
    else:  # the same request without curl
        assert write(base, command[command.index("-d") + 1]) == 201

    point = page.locator("#chart svg circle.point[data-key=temp]")
    expect(point).to_have_count(1, timeout=LIVE_S * 1000)
    expect(page.locator(".legend")).to_contain_text("temp (last 21.5)")
    assert page.evaluate("window.notReloaded") is True


# --- the pages ------------------------------------------------------------------------------------
def test_overview_shows_the_clock_sims_writes_charges_and_listeners(page: Page, base: str) -> None:
    control(base, "POST", "/sims", {})
    for value in (1, 2, 3):
        assert write(base, f'{{"v":{value}}}') == 201
    console(page, base)
    main = page.locator("main")
    expect(main.locator("#sims-by-status")).to_contain_text("active")
    expect(main.locator("#sims-by-status")).to_contain_text("ready")
    expect(main.locator("#writes-today")).to_have_text("3")
    expect(main.locator("#month-charges")).to_contain_text("USD")
    expect(main).to_contain_text("harvest-tcp")
    expect(main).to_contain_text("memory")
    expect(main).to_contain_text("OP0000000000")


def test_the_chart_is_drawn_from_real_entries(page: Page, base: str) -> None:
    control(base, "PUT", "/clock", {"now": T0 + 3_600_000, "frozen": True})
    for i in range(5):
        body = f'{{"temp":{20 + i},"hum":{50 - i},"gps":{{"lat":35.6}}}}'
        assert write(base, body, timestamp=T0 + i * 60_000) == 201
    assert write(base, b"\x01\xab", "application/octet-stream", timestamp=T0 + 600_000) == 201
    console(page, base, f"sims/{IMSI}")
    chart = page.locator("#chart svg")
    expect(chart.locator("path.line")).to_have_count(3)  # gps.lat, hum, temp
    expect(chart.locator("circle.point[data-key=temp]")).to_have_count(5)
    times = chart.locator("circle.point[data-key=temp]").evaluate_all(
        "els => els.map(e => Number(e.dataset.time))"
    )
    assert sorted(times) == [T0 + i * 60_000 for i in range(5)]
    expect(page.locator(".legend")).to_contain_text("gps.lat")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first).to_contain_text("01 ab")  # binary: hex ...
    expect(rows.first).to_contain_text("Aas=")  # ... and base64
    # hover: the local time and the UTC time of the place under the pointer
    box = chart.locator("rect.overlay").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 20)
    expect(page.locator(".chart-tip")).to_contain_text("UTC")
    # drag to zoom: fewer points in range, the range in the inputs
    page.mouse.move(box["x"] + 2, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20, steps=4)
    page.mouse.up()
    expect(page.locator("#zoom-from")).not_to_have_value("")
    assert page.locator("#entries tbody tr").count() < 6
    page.get_by_role("button", name="Show all").click()
    expect(page.locator("#entries tbody tr")).to_have_count(6)


def test_the_charts_pure_logic(page: Page, base: str) -> None:
    """The chart module's scales, ticks, series and paths, run in the browser itself."""
    console(page, base)
    got: dict[str, Any] = page.evaluate(
        """async () => {
        const c = await import('/console/chart.js');
        const x = c.linearScale([0, 10], [100, 200]);
        const entries = [
          {time: 2000, content: '{"b":2,"a":{"c":1.5},"s":"x","n":null}'},
          {time: 1000, content: '{"b":1}'},
          {time: 3000, content: 'not json'},
          {time: 4000, content: '{"payload":"AQI="}'},
        ];
        const series = c.numericSeries(entries);
        return {
          x5: x(5), inv: x.invert(150), flat: c.linearScale([3, 3], [0, 10])(3),
          step: c.niceStep(97, 5), ticks: c.niceTicks(0.1, 0.95, 5), one: c.niceTicks(4, 4),
          domain: c.niceDomain(3, 97), single: c.niceDomain(5, 5),
          keys: [...series.keys()], b: series.get('b'), ac: series.get('a.c'),
          path: c.linePath([[0, 0], [10, 10]], x, c.linearScale([0, 10], [50, 0])),
          hourly: c.timeTicks(0, 3 * 3600e3, 3, 0),
          offset: c.timeTicks(0, 3 * 3600e3, 3, 1800e3).ticks,
          minutes: c.timeTicks(0, 600e3, 5, 0).step,
          label: c.timeLabel(Date.UTC(2026, 2, 10, 9, 5, 7), 1000).length,
          extent: c.timeExtent(series),
        };
      }"""
    )
    assert got["x5"] == 150
    assert got["inv"] == 5
    assert got["flat"] == 0
    assert got["step"] == 20
    assert got["ticks"] == [0.2, 0.4, 0.6, 0.8]
    assert got["one"] == [4]
    assert got["domain"] == [0, 100]
    assert got["single"][0] < 5 < got["single"][1]
    assert got["keys"] == ["a.c", "b"]
    assert got["b"] == [[1000, 1], [2000, 2]]
    assert got["ac"] == [[2000, 1.5]]
    assert got["path"] == "M100.0,50.0L200.0,0.0"
    assert got["hourly"] == {"step": 3_600_000, "ticks": [0, 3_600_000, 7_200_000, 10_800_000]}
    assert got["offset"] == [1_800_000, 5_400_000, 9_000_000]  # on the local hour
    assert got["minutes"] == 120_000
    assert got["label"] == len("HH:MM:SS")
    assert got["extent"] == [1000, 2000]


def test_a_new_write_appears_live_and_pause_holds_it(page: Page, base: str) -> None:
    assert write(base, '{"temp":1}') == 201
    console(page, base, f"sims/{IMSI}")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(1)
    started = time.monotonic()
    assert write(base, '{"temp":2}') == 201
    expect(rows).to_have_count(2, timeout=LIVE_S * 1000)
    assert time.monotonic() - started < LIVE_S
    page.get_by_role("button", name="Pause live updates").click()
    assert write(base, '{"temp":3}') == 201
    expect(page.locator("#live-note")).to_have_text("1 new write(s) while paused")
    expect(rows).to_have_count(2)
    page.get_by_role("button", name="Resume live updates").click()
    expect(rows).to_have_count(3)
    expect(page.locator("#chart circle.point")).to_have_count(3)


def test_delete_an_entry_after_confirming(page: Page, base: str) -> None:
    control(base, "PUT", "/clock", {"now": T0 + 60_000, "frozen": True})
    assert write(base, '{"temp":1}', timestamp=T0) == 201
    assert write(base, '{"temp":2}', timestamp=T0 + 1000) == 201
    console(page, base, f"sims/{IMSI}")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(2)
    rows.first.get_by_role("button", name="Delete").click()
    page.locator("#confirm").get_by_role("button", name="Delete").click()
    expect(rows).to_have_count(1)
    api = control(base, "POST", "/operators/OP0000000000/token")
    headers = {"X-Soracom-API-Key": api["apiKey"], "X-Soracom-Token": api["token"]}
    _, left = call(base, "GET", f"/v1/subscribers/{IMSI}/data", headers=headers)
    assert [e["time"] for e in left] == [T0]


def test_a_sim_action_asks_first(page: Page, base: str) -> None:
    console(page, base, "sims")
    form = page.locator(f"form.action[data-imsi='{IMSI}']")
    form.get_by_label(f"Action for {IMSI}").select_option("suspend")
    form.get_by_role("button", name="Apply").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text(f"Suspend SIM {IMSI}?")
    dialog.get_by_role("button", name="Cancel").click()
    assert control(base, "GET", f"/sims/{IMSI}")["status"] == "ready"
    form.get_by_role("button", name="Apply").click()
    dialog.get_by_role("button", name="Suspend").click()
    expect(page.locator("main")).to_contain_text(f"Suspend: done for {IMSI}")
    expect(page.locator("main table")).to_contain_text("suspended")
    assert control(base, "GET", f"/sims/{IMSI}")["status"] == "suspended"
    # a harmless action needs no confirmation
    page.locator(f"form.action[data-imsi='{IMSI}']").get_by_label(
        f"Action for {IMSI}"
    ).select_option("activate")
    page.locator(f"form.action[data-imsi='{IMSI}']").get_by_role("button", name="Apply").click()
    expect(page.locator("main table")).to_contain_text("active")


def test_clock_controls_change_what_the_page_shows(page: Page, base: str) -> None:
    assert write(base, '{"v":1}') == 201
    console(page, base)
    expect(page.locator("#writes-today")).to_have_text("1")
    page.get_by_role("button", name="Freeze").click()
    expect(page.locator("#clock-now .badge")).to_have_text("frozen")
    assert control(base, "GET", "/clock")["frozen"] is True
    page.get_by_label("Set to (local time)").fill("2031-05-04T10:20:30")
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.locator("#clock-now")).to_contain_text("2031-05-04 10:20:30")
    expect(page.locator("#clock")).to_contain_text("2031-05-04 10:20:30")
    expect(page.locator("#writes-today")).to_have_text("0")  # another UTC day
    page.get_by_label("Advance by").fill("2")
    page.get_by_label("Unit").select_option("days")
    page.get_by_role("button", name="Advance").click()
    expect(page.locator("#clock-now")).to_contain_text("2031-05-06 10:20:30")
    page.get_by_role("button", name="Let it run").click()
    expect(page.locator("#clock-now .badge")).to_have_text("running")


def test_bills_in_usd(page: Page, base: str) -> None:
    control(base, "PUT", "/clock", {"now": T0, "frozen": True})
    assert write(base, '{"v":1}') == 201
    console(page, base, "billing")
    expect(page.locator("#bill-total")).to_contain_text("USD")
    main = page.locator("main")
    expect(main).to_contain_text("Harvest Data Option")
    expect(main).to_contain_text("0.05 USD")  # the day's option fee (air-global-terms item 12)
    expect(page.locator("#daily-chart rect.bar")).to_have_count(31)  # every day of March
    expect(main).to_contain_text("2026-03-10")  # bundle use that day
    page.get_by_label("Month").select_option("202603")


def test_groups_are_edited_with_the_apis_validation(watched: Watched, base: str) -> None:
    watched.expected_statuses.add(400)  # the API's refusal, shown in the form
    page = watched.page
    console(page, base, "groups")
    form = page.locator("form[data-namespace=SoracomAir]")
    form.get_by_label("SoracomAir").fill(
        '{"binaryParserEnabled": true, "binaryParserFormat": "t:0:nonsense"}'
    )
    form.get_by_role("button", name="Save SoracomAir").click()
    expect(form.locator(".message.error")).to_contain_text("HEM1002")
    form.get_by_label("SoracomAir").fill(
        '{"binaryParserEnabled": true, "binaryParserFormat": "temp:0:int:16"}'
    )
    form.get_by_role("button", name="Save SoracomAir").click()
    expect(page.locator("main")).to_contain_text("SoracomAir of harvest-emulator saved.")
    assert write(base, b"\x00\x2a", "application/octet-stream") == 201
    page.goto(f"{base}/console/#/sims/{IMSI}")
    expect(page.locator("#entries")).to_contain_text("Binary Parser output")


def test_requests_live_and_fault_rules(page: Page, base: str) -> None:
    console(page, base, "requests")
    page.get_by_label("Effect", exact=True).select_option("status")
    page.get_by_label("Protocol", exact=True).last.select_option("http")
    page.get_by_label("Only the next N").fill("1")
    page.get_by_role("button", name="Add rule").click()
    rules = page.locator("main table").nth(1)
    expect(rules).to_contain_text("protocol=http")
    assert write(base, '{"x":1}') == 500
    log = page.locator("#request-log")
    expect(log).to_contain_text("500", timeout=LIVE_S * 1000)
    page.get_by_label("Protocol", exact=True).first.select_option("udp")
    expect(log).to_contain_text("No request matches")
    rules.get_by_role("button", name=re.compile("Remove rule")).click()
    page.locator("#confirm").get_by_role("button", name="Remove").click()
    expect(rules).to_contain_text("No fault rules")


# --- Harvest Files -------------------------------------------------------------------------------
def file_status(base: str, path: str) -> int:
    """getFileMetadata's status for a path of the default operator's private files."""
    status, _ = call(base, "HEAD", "/v1/files/private" + path, headers=api_headers(base))
    return status


def test_files_list_navigate_page_and_show_metadata(page: Page, base: str) -> None:
    assert put_file(base, "/logs/boot.log", b"boot ok\n", "text/plain") == 201
    assert put_file(base, "/logs/2026/03.txt", b"march") == 201
    assert put_file(base, "/readme.txt", b"hello", "text/plain") == 201
    for i in range(12):
        assert put_file(base, f"/many/f{i:02}.bin", bytes([i])) == 201
    console(page, base, "files")
    rows = page.locator("#file-list tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("logs/")
    expect(rows.nth(1)).to_contain_text("many/")
    expect(rows.nth(2)).to_contain_text("readme.txt")
    expect(rows.nth(2)).to_contain_text("5 bytes")
    expect(rows.nth(2)).to_contain_text("text/plain")
    # into a directory, deeper, back with the browser and up with the page
    page.get_by_role("link", name="logs/").click()
    expect(page.locator("#file-list caption")).to_contain_text("/logs/")
    expect(rows).to_have_count(2)
    assert "null" not in page.locator("main").inner_text()  # no section left out as "null"
    expect(rows.nth(0)).to_contain_text("2026/")  # directories end with /
    page.get_by_role("link", name="2026/").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("03.txt")
    crumbs = page.get_by_role("navigation", name="Path").get_by_role("link")
    expect(crumbs).to_have_text(["private", "logs", "2026"])
    expect(crumbs.last).to_have_attribute("aria-current", "page")
    page.go_back()
    expect(page.locator("#file-list caption")).to_contain_text("/logs/ ")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="Up one level").click()
    expect(rows).to_have_count(3)
    # paging: last_evaluated_key and x-soracom-next-key
    page.get_by_role("link", name="many/").click()
    expect(rows).to_have_count(12)
    page.get_by_label("Per page").select_option("10")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("f00.bin")
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("f10.bin")
    expect(page.locator("#page-note")).to_have_text("Page 2 (the last)")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows.first).to_contain_text("f00.bin")
    # a file's metadata: getFileMetadata (HEAD)
    page.goto(f"{base}/console/#/files/")
    page.get_by_role("link", name="readme.txt").click()
    details = page.locator("#file-details")
    expect(details).to_contain_text("5 bytes")
    expect(details).to_contain_text("text/plain")
    expect(details).to_contain_text(hashlib.md5(b"hello").hexdigest())
    expect(details.locator("time")).to_have_count(1)


def test_upload_through_the_page_then_list_and_download_it(page: Page, base: str) -> None:
    body = bytes(range(256)) * 40 + "ünïcode".encode()
    console(page, base, "files")
    expect(page.locator("#file-list")).to_contain_text("No files yet")
    page.get_by_label("File", exact=True).set_input_files(
        files=[FilePayload(name="fw.bin", mimeType="application/x-firmware", buffer=body)]
    )
    expect(page.get_by_label("Name under /")).to_have_value("fw.bin")
    expect(page.get_by_label("Content type")).to_have_value("application/x-firmware")
    page.get_by_label("Name under /").fill("ota/fw.bin")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#files-message")).to_contain_text("Uploaded /ota/fw.bin (10,249 bytes")
    rows = page.locator("#file-list tbody tr")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="ota/").click()
    expect(rows.first).to_contain_text("fw.bin")
    expect(rows.first).to_contain_text("application/x-firmware")
    # through getFile's 302 to the signed URL, saved by the browser
    with page.expect_download() as downloading:
        rows.first.get_by_role("button", name="Download").click()
    download = downloading.value
    assert download.suggested_filename == "fw.bin"
    saved = download.path()
    assert saved is not None
    assert saved.read_bytes() == body
    link = page.locator("#files-message").get_by_role("link", name="signed download URL")
    href = link.get_attribute("href")
    assert href is not None
    assert "/_harvest_files/" in href
    assert "signature=" in href
    with page.expect_download() as again:  # the URL itself works too, without the API session
        link.click()
    saved = again.value.path()
    assert saved is not None
    assert saved.read_bytes() == body
    assert file_status(base, "/ota/fw.bin") == 200


def test_delete_a_file_after_confirming(page: Page, base: str) -> None:
    assert put_file(base, "/logs/a.txt", b"a") == 201
    assert put_file(base, "/logs/b.txt", b"b") == 201
    console(page, base, "files/logs/")
    rows = page.locator("#file-list tbody tr")
    expect(rows).to_have_count(2)
    dialog = page.locator("#confirm")
    rows.first.get_by_role("button", name="Delete a.txt").click()
    expect(dialog).to_contain_text("Delete the file /logs/a.txt?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(rows).to_have_count(2)
    assert file_status(base, "/logs/a.txt") == 200
    rows.first.get_by_role("button", name="Delete a.txt").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#files-message")).to_have_text("Deleted /logs/a.txt.")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("b.txt")
    assert file_status(base, "/logs/a.txt") == 404
    assert file_status(base, "/logs/b.txt") == 200


def test_a_directory_is_deleted_only_when_empty(watched: Watched, base: str) -> None:
    watched.expected_statuses.add(400)  # deleteDirectory's refusal, shown on the page
    page = watched.page
    assert put_file(base, "/logs/a.txt", b"a") == 201
    console(page, base, "files")
    rows = page.locator("#file-list tbody tr")
    dialog = page.locator("#confirm")
    rows.first.get_by_role("button", name="Delete logs/").click()
    expect(dialog).to_contain_text("Delete the directory /logs/?")
    dialog.get_by_role("button", name="Delete").click()
    message = page.locator("#files-message")
    expect(message).to_have_text("The directory /logs/ is not empty. (HEM1009)")
    expect(message).to_have_attribute("role", "alert")
    expect(rows).to_have_count(1)
    # empty it, then delete it from inside: back at the root, nothing left
    page.get_by_role("link", name="logs/").click()
    page.get_by_role("button", name="Delete a.txt").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#file-list")).to_contain_text("This directory is empty.")
    page.get_by_role("button", name="Delete this directory").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#file-list caption")).to_contain_text("/ (page 1, 0 entries)")
    expect(page.locator("#file-list")).to_contain_text("No files yet")
    status, _ = call(base, "GET", "/v1/files/private/logs/", headers=api_headers(base))
    assert status == 404


@pytest.mark.parametrize(
    "route", ["", "sims", f"sims/{IMSI}", "groups", "billing", "requests", "files/logs/"]
)
def test_every_page_fits_a_phone_and_labels_its_controls(
    browser: Browser, base: str, route: str
) -> None:
    assert write(base, '{"temp":1,"hum":2}') == 201
    assert put_file(base, "/logs/a-rather-long-name-for-a-phone.txt", b"x" * 2000) == 201
    for watched in open_page(browser, PHONE):
        page = watched.page
        console(page, base, route)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{route or 'overview'} is {width}px wide"
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll(
                   'main input, main select, main textarea, header select')]
                 .filter(e => !e.labels.length && !e.getAttribute('aria-label'))
                 .map(e => e.outerHTML)"""
        )
        assert unlabelled == []
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("main h1").count() == 1


def test_keyboard_reaches_the_pages(page: Page, base: str) -> None:
    console(page, base)
    page.keyboard.press("Tab")  # the skip link first
    expect(page.locator(":focus")).to_have_text("Skip to content")
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("SIMs")
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_have_text("SIMs")


def test_the_control_token_is_asked_for(browser: Browser) -> None:
    with process.running(["--memory", "--port", "0", "--control-token", "t0ken"]) as emulator:
        for watched in open_page(browser):
            watched.expected_statuses.add(401)  # the calls before the token is given
            page = watched.page
            page.goto(emulator.base_url + "/")
            dialog = page.locator("#login")
            expect(dialog).to_be_visible()
            page.get_by_label("Token", exact=True).fill("wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#login-error")).to_have_text("That token was not accepted.")
            page.get_by_label("Token", exact=True).fill("t0ken")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("main h1")).to_have_text("Overview")
            expect(page.locator("#live")).to_have_text("live")
