"""The charts of docs/benchmarks.md: ingest throughput and server CPU per write, before and after,
drawn as SVG from the figures in a JSON file beside each (written by hand from the benchmarks'
output, each with the command that made it): docs/benchmarks.json (the journal) and
docs/benchmarks-batch-lean.json (the raw batch path and the lean HTTP path).

    python -m tests.bench.chart            # rewrites every chart of CHARTS
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "docs" / "benchmarks.json"
CHART = ROOT / "docs" / "benchmarks-ingest.svg"
#: Each chart: the figures it is drawn from, and the SVG.
CHARTS = (
    (FIGURES, CHART),
    (ROOT / "docs" / "benchmarks-batch-lean.json", ROOT / "docs" / "benchmarks-batch-lean.svg"),
)

WIDTH, PANEL_HEIGHT, LEFT, TOP, BAR = 820, 240, 130, 40, 48
COLOURS = {"before": "#9aa5b1", "after": "#1f6feb", "baseline": "#d29922"}


def panel(
    title: str, unit: str, rows: list[dict[str, float | str]], key: str, top: float
) -> list[str]:
    """One horizontal bar group per path (before, after, baseline where known)."""
    series = [s for s in ("before", "after", "baseline") if any(f"{key}_{s}" in r for r in rows)]
    peak = max(float(r[f"{key}_{s}"]) for r in rows for s in series if f"{key}_{s}" in r)
    scale = (WIDTH - LEFT - 160) / peak
    out = [f'<text x="{LEFT}" y="{top - 12}" class="title">{escape(title)}</text>']
    y = top
    for row in rows:
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 14}" class="label">{escape(str(row["path"]))}</text>'
        )
        for name in series:
            value = row.get(f"{key}_{name}")
            if value is None:
                continue
            length = max(1.0, float(value) * scale)
            height = BAR / len(series) - 2
            out.append(
                f'<rect x="{LEFT}" y="{y}" width="{length:.1f}" height="{height:.1f}"'
                f' fill="{COLOURS[name]}"><title>{name}: {value} {unit}</title></rect>'
            )
            out.append(
                f'<text x="{LEFT + length + 4:.1f}" y="{y + BAR / len(series) - 4:.1f}"'
                f' class="value">{float(value):,.0f} {unit} ({name})</text>'
            )
            y += BAR / len(series)
        y += 14
    return out


def render(figures: dict[str, list[dict[str, float | str]]]) -> str:
    rows = figures["rows"]
    height = 2 * PANEL_HEIGHT + TOP
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Ingest benchmarks">',
        "<style>text{font:12px sans-serif;fill:#24292f}.title{font-weight:bold}"
        ".label{text-anchor:end}.value{font-size:11px}</style>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    body += panel("Stored writes per second (higher is better)", "/s", rows, "rate", TOP)
    body += panel(
        "Server CPU per write, µs (lower is better)", "µs", rows, "cpu", TOP + PANEL_HEIGHT
    )
    body.append("</svg>")
    return "\n".join(body) + "\n"


def main() -> None:
    for figures, chart in CHARTS:
        chart.write_text(render(json.loads(figures.read_text())), encoding="utf-8")
        print(f"wrote {chart.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
