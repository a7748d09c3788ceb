"""``python -m bench.population_plot [--runs var/population.jsonl] [--out docs/population.svg]``

Draws what ``bench.population`` appended, one JSON line per run: the cost of each
stage in seconds per 1,000 subjects against the number of subjects (left), and
the lookup latency p50 / p99 against it (right), both on log axes; one line per
stage and store (SQLite solid, PostgreSQL dashed). Where several runs share a
store and a size, the last one counts. The SVG is written by hand (polylines and
labels): no plotting library."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["Panel", "Series", "latency_series", "load_runs", "log_ticks", "render_svg", "stage_series"]

#: The stages drawn on the left, with their colours.
STAGE_COLOURS = {
    "signup": "#1f77b4",
    "ingest": "#ff7f0e",
    "delivery": "#2ca02c",
    "rescore": "#d62728",
    "train": "#9467bd",
}
LATENCY_COLOURS = {"lookup_p50_ms": "#17becf", "lookup_p99_ms": "#8c564b"}


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (x, y), both > 0
    colour: str
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]


def load_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a JSON-lines file, in file order (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _latest(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for run in runs:
        by_key[(str(run["db"]), int(run["subjects"]))] = run
    return by_key


def stage_series(runs: Sequence[dict[str, Any]]) -> list[Series]:
    """Seconds per 1,000 subjects of each measured stage, against subjects; one
    series per stage and store."""
    latest = _latest(runs)
    out = []
    for db in sorted({db for db, _ in latest}):
        for stage, colour in STAGE_COLOURS.items():
            points = []
            for (run_db, n), run in sorted(latest.items()):
                if run_db != db:
                    continue
                seconds = next((s["seconds"] for s in run["stages"] if s["name"] == stage), None)
                if seconds is not None and seconds > 0:
                    points.append((float(n), seconds / n * 1000))
            if points:
                out.append(Series(f"{stage} ({db})", tuple(points), colour, dashed=db != "sqlite"))
    return out


def latency_series(runs: Sequence[dict[str, Any]]) -> list[Series]:
    """Lookup p50 and p99 (ms) against subjects; one series per figure and store."""
    latest = _latest(runs)
    out = []
    for db in sorted({db for db, _ in latest}):
        for key, colour in LATENCY_COLOURS.items():
            points = [(float(n), float(run["result"][key])) for (run_db, n), run in sorted(latest.items())
                      if run_db == db and isinstance(run["result"].get(key), (int, float)) and run["result"][key] > 0]
            if points:
                label = key.removeprefix("lookup_").removesuffix("_ms")
                out.append(Series(f"lookup {label} ({db})", tuple(points), colour, dashed=db != "sqlite"))
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks from the decade at or below ``lo`` to the one at or above ``hi``."""
    if not (lo > 0 and hi >= lo):
        raise ValueError(f"log axis needs 0 < lo <= hi, not {lo}, {hi}")
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if first == last:
        last += 1
    return [m * 10.0 ** e for e in range(first, last + 1) for m in (1, 2, 5) if m * 10.0 ** e <= 10.0 ** last]


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _panel_svg(panel: Panel, x0: float, y0: float, width: float, height: float) -> list[str]:
    xs = [x for s in panel.series for x, _ in s.points]
    ys = [y for s in panel.series for _, y in s.points]
    if not xs:
        return [f'<text x="{x0 + width / 2:.1f}" y="{y0 + height / 2:.1f}" text-anchor="middle">'
                f'{escape(panel.title)}: no data</text>']
    x_ticks, y_ticks = log_ticks(min(xs), max(xs)), log_ticks(min(ys), max(ys))
    lx0, lx1 = math.log10(x_ticks[0]), math.log10(x_ticks[-1])
    ly0, ly1 = math.log10(y_ticks[0]), math.log10(y_ticks[-1])

    def px(x: float) -> float:
        return x0 + (math.log10(x) - lx0) / (lx1 - lx0) * width

    def py(y: float) -> float:
        return y0 + height - (math.log10(y) - ly0) / (ly1 - ly0) * height

    out = [f'<text x="{x0 + width / 2:.1f}" y="{y0 - 12:.1f}" text-anchor="middle" '
           f'font-weight="bold">{escape(panel.title)}</text>',
           f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{height:.1f}" fill="none" stroke="#444"/>']
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{y0:.1f}" x2="{px(t):.1f}" y2="{y0 + height:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{px(t):.1f}" y="{y0 + height + 14:.1f}" text-anchor="middle">{_fmt(t)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{x0:.1f}" y1="{py(t):.1f}" x2="{x0 + width:.1f}" y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 5:.1f}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="{x0 + width / 2:.1f}" y="{y0 + height + 32:.1f}" text-anchor="middle">'
               f'{escape(panel.x_label)}</text>')
    out.append(f'<text transform="translate({x0 - 45:.1f},{y0 + height / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(panel.y_label)}</text>')
    for i, s in enumerate(panel.series):
        dash = ' stroke-dasharray="6,4"' if s.dashed else ""
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        out.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{s.colour}"/>' for x, y in s.points)
        ly = y0 + 10 + 16 * i
        out.append(f'<line x1="{x0 + width + 10:.1f}" y1="{ly:.1f}" x2="{x0 + width + 30:.1f}" y2="{ly:.1f}" '
                   f'stroke="{s.colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x0 + width + 34:.1f}" y="{ly + 4:.1f}">{escape(s.label)}</text>')
    return out


def render_svg(panels: Sequence[Panel], caption: str = "") -> str:
    """The panels side by side, each with log axes and its legend; ``caption`` below."""
    panel_w, panel_h, legend_w, margin = 360.0, 260.0, 170.0, 70.0
    width = margin + len(panels) * (panel_w + legend_w + margin)
    height = panel_h + 110.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>']
    for i, panel in enumerate(panels):
        parts.extend(_panel_svg(panel, margin + i * (panel_w + legend_w + margin), 35.0, panel_w, panel_h))
    if caption:
        parts.append(f'<text x="{margin:.0f}" y="{height - 12:.0f}" fill="#555">{escape(caption)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.population_plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="var/population.jsonl", help="JSON lines of bench.population")
    parser.add_argument("--out", default="docs/population.svg")
    args = parser.parse_args(argv)
    runs = load_runs(Path(args.runs))
    if not runs:
        print(f"no runs in {args.runs}", file=sys.stderr)
        return 1
    codes = sorted({str(r.get("code", "")).removeprefix("code: commit ") for r in runs})
    sizes = sorted({int(r["subjects"]) for r in runs})
    caption = (f"bench.population, N = {', '.join(f'{n:,}' for n in sizes)} subjects; code {', '.join(codes)}; "
               "2 shared cores, figures taken under load")
    svg = render_svg([
        Panel("cost per stage", "subjects", "seconds per 1,000 subjects", tuple(stage_series(runs))),
        Panel("lookups through the gateway, 8 in flight", "subjects", "ms", tuple(latency_series(runs))),
    ], caption)
    Path(args.out).write_text(svg)
    print(f"wrote {args.out} from {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
