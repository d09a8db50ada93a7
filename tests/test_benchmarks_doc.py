"""docs/benchmarks.md's charts are drawn from their JSON figures by tests.bench.chart: each SVG in
the repository is what its figures give (re-run ``python -m tests.bench.chart`` after editing
them), the page shows it, and every figure a chart shows is in the page's tables too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.chart import CHARTS, ROOT, render

PAGE = ROOT / "docs" / "benchmarks.md"


@pytest.mark.parametrize(("figures", "chart"), CHARTS, ids=[c.name for _, c in CHARTS])
def test_the_chart_is_drawn_from_the_recorded_figures(figures: Path, chart: Path) -> None:
    assert chart.read_text(encoding="utf-8") == render(json.loads(figures.read_text()))
    assert f"]({chart.name})" in PAGE.read_text(encoding="utf-8")  # and the page shows it


@pytest.mark.parametrize(("figures", "chart"), CHARTS, ids=[c.name for _, c in CHARTS])
def test_the_page_states_every_charted_figure(figures: Path, chart: Path) -> None:
    page = PAGE.read_text(encoding="utf-8")
    for row in json.loads(figures.read_text())["rows"]:
        for key in ("rate_before", "rate_after", "rate_baseline"):
            assert f"{row[key]:,}" in page, (row["path"], key)
