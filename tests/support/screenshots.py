"""Refresh the console's screenshots in docs/console/: ``python -m tests.support.screenshots``.

Starts an emulator (in memory, free ports) and Debian's Chromium, seeds a morning of readings
under a frozen clock, and saves each page at 1280 px (and the SIM's data at phone width), so
the pictures in README.md and docs/console.md can be made again after any change to the pages.
"""

from __future__ import annotations

import sys

from playwright.sync_api import expect, sync_playwright

from tests.support import process
from tests.support.browser import DESKTOP, PHONE, chromium_path, control, launch, seed, watch

#: 2026-03-10T09:30:00Z, frozen: the same pictures every time.
NOW = 1_773_135_000_000
IMSI = "001010000000001"
PAGES = (
    ("overview", ""),
    ("sims", "sims"),
    ("sim-data", f"sims/{IMSI}"),
    ("groups", "groups"),
    ("billing", "billing"),
    ("requests", "requests"),
    ("files", "files/logs/2026-03-10.txt"),
)


def main() -> int:
    from tests.support.browser import screenshot_dir

    out = screenshot_dir()
    out.mkdir(parents=True, exist_ok=True)
    executable = chromium_path()
    with process.running(["--memory", "--port", "0"]) as emulator, sync_playwright() as pw:
        base = emulator.base_url
        control(base, "PUT", "/clock", {"now": NOW, "frozen": True})
        seed(base, NOW)
        browser = launch(pw, executable)
        shots = [(name, route, DESKTOP) for name, route in PAGES]
        shots.append(("sim-data-phone", f"sims/{IMSI}", PHONE))
        for name, route, viewport in shots:
            context = browser.new_context(
                viewport=viewport,  # type: ignore[arg-type]
                timezone_id="UTC",
                locale="en-US",
                device_scale_factor=1,
            )
            watched = watch(context.new_page())
            page = watched.page
            page.goto(f"{base}/console/#/{route}")
            expect(page.locator("#live")).to_have_text("live")
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_timeout(500)  # the chart's second drawing, at its final width
            path = out / f"{name}.png"
            page.screenshot(path=str(path))
            context.close()
            if watched.errors:
                print(f"{name}: {watched.errors}", file=sys.stderr)
                return 1
            print(path.relative_to(out.parents[1]))
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
