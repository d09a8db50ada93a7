"""docs/benchmarks.md's chart is drawn from docs/benchmarks.json by tests.bench.chart: the SVG in
the repository is what the figures give (re-run ``python -m tests.bench.chart`` after editing
them), and every figure the chart shows is in the page's tables too."""

from __future__ import annotations

import json

from tests.bench.chart import CHART, FIGURES, ROOT, render


def test_the_chart_is_drawn_from_the_recorded_figures() -> None:
    assert CHART.read_text(encoding="utf-8") == render(json.loads(FIGURES.read_text()))


def test_the_page_states_every_charted_figure() -> None:
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for row in json.loads(FIGURES.read_text())["rows"]:
        for key in ("rate_before", "rate_after", "rate_baseline"):
            assert f"{row[key]:,}" in page, (row["path"], key)
