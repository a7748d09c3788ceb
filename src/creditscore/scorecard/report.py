"""The model report: one self-contained HTML file that shows what a trained scorecard
does, for a person to look at rather than read.

``write_report(result, path)`` takes what the trainer returns (a ``TrainResult``:
the artifact, its metrics and the holdout arrays) and writes:

- the headline numbers (holdout AUC, Gini, KS, rows, bad rate, PDO and scaling);
- the ROC curve with the diagonal and the KS point;
- the score distribution of goods and of bads (overlaid histograms, each as a share
  of its own class, so a small class stays visible);
- the bad rate by band (bars, with counts), which must fall as the band rises;
- calibration: mean predicted probability of bad against the observed bad rate per
  decile of the prediction;
- the information value of every feature (sorted bars; the features the trainer
  dropped in grey, with the reason);
- the points table: every bin of every feature with its count, bad rate, WoE and
  points.

The file has no external assets, no scripts and no links: charts are inline SVG
drawn here, styles are inline CSS. It can be mailed, archived beside the model
artifact, or opened offline. The holdout arrays are the trainer's; rows that were
not scored (INSUFFICIENT_DATA: probability NaN) are counted and left out of the
charts, as they are left out of the metrics.

Pure Python and numpy: no gRPC, no plotting library.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import FEATURE_NAMES, by_name

from ._files import write_atomically
from .model import BANDS, SCORE_MAX, SCORE_MIN

__all__ = [
    "HISTOGRAM_STEP",
    "TrainResultLike",
    "bad_rate_by_band",
    "calibration_by_decile",
    "render_report",
    "roc_curve",
    "score_histogram",
    "write_report",
]

HISTOGRAM_STEP = 25  # score points per histogram bar
REPORT_MODE = 0o644  # a report is read by people and tools other than its writer
_MAX_ROC_POINTS = 400  # the curve is monotone: thinning it changes nothing visible
_MAX_LABEL = 58  # characters of a feature name on the IV chart (the full name is its tooltip)

# Colours: goods blue, bads red; bands from red (poor) to green (excellent).
_GOOD = "#2f6db5"
_BAD = "#d1495b"
_INK = "#1f2933"
_MUTED = "#6b7785"
_GRID = "#e3e7ec"
_ACCENT = "#0f766e"
_BAND_COLOURS = ("#c0392b", "#e67e22", "#d4ac0d", "#7cb342", "#2e8b57")


class TrainResultLike(Protocol):
    """What the report reads from the trainer's result: the artifact (the model
    dict, ``creditscore.scorecard.model`` format), its holdout metrics, and per
    holdout row the outcome (1 = bad), the score and the probability of bad
    (NaN where the row was not scored)."""

    @property
    def artifact(self) -> Mapping[str, Any]: ...
    @property
    def metrics(self) -> Mapping[str, Any] | None: ...
    @property
    def y_holdout(self) -> npt.NDArray[Any]: ...
    @property
    def score_holdout(self) -> npt.NDArray[Any]: ...
    @property
    def pd_holdout(self) -> npt.NDArray[Any]: ...


# ---------------------------------------------------------------- the numbers


def roc_curve(y: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(false positive rate, true positive rate)`` at every distinct threshold of
    ``risk`` (higher = more likely bad; ``y`` 1 = bad), from (0, 0) to (1, 1).
    Tied risks move together, so the area under it equals the rank AUC with ties
    counted one half."""
    y = np.asarray(y).astype(bool)
    risk = np.asarray(risk, dtype=np.float64)
    n_bad, n_good = int(y.sum()), int((~y).sum())
    if n_bad == 0 or n_good == 0:
        raise ValueError("a ROC curve needs both bads and goods")
    order = np.argsort(-risk, kind="stable")
    risk, y = risk[order], y[order]
    # The last row of every group of equal risks is where a threshold falls.
    last = np.flatnonzero(np.r_[risk[1:] != risk[:-1], True])
    bads = np.cumsum(y)[last]
    goods = (last + 1) - bads
    fpr = np.r_[0.0, goods / n_good]
    tpr = np.r_[0.0, bads / n_bad]
    return fpr, tpr


def score_histogram(
    scores: np.ndarray, step: int = HISTOGRAM_STEP
) -> tuple[np.ndarray, np.ndarray]:
    """``(edges, counts)`` of scores over 350-950 in bars of ``step`` points:
    ``[lo, lo + step)``, the last bar including 950."""
    edges = np.arange(SCORE_MIN, SCORE_MAX + 1, step, dtype=np.float64)
    if edges[-1] != SCORE_MAX:
        edges = np.r_[edges, float(SCORE_MAX)]
    counts, _ = np.histogram(np.asarray(scores, dtype=np.float64), bins=edges)
    return edges, counts


def bad_rate_by_band(y: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    """Per band (lowest first): ``band``, ``lo``, ``hi``, rows ``n``, ``bads`` and
    ``bad_rate`` (None for an empty band)."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores)
    out: list[dict[str, Any]] = []
    for band, lo, hi in BANDS:
        rows = (scores >= lo) & (scores <= hi)
        n = int(rows.sum())
        bads = int(y[rows].sum())
        out.append({"band": band.value, "lo": lo, "hi": hi, "n": n, "bads": bads,
                    "bad_rate": bads / n if n else None})
    return out


def calibration_by_decile(y: np.ndarray, pd: np.ndarray, groups: int = 10) -> list[dict[str, Any]]:
    """Rows sorted by predicted probability of bad, highest first (lowest score
    first, as the trainer's own table), and cut into ``groups`` groups of (nearly)
    equal size; per group: ``n``, ``predicted`` (mean probability of bad) and
    ``observed`` (bad rate). A well-calibrated model has the two close in every
    group."""
    y = np.asarray(y, dtype=np.float64)
    pd = np.asarray(pd, dtype=np.float64)
    if len(y) == 0:
        return []
    order = np.argsort(-pd, kind="stable")
    out = []
    for chunk in np.array_split(order, min(groups, len(order))):
        out.append({"n": int(len(chunk)), "predicted": float(pd[chunk].mean()),
                    "observed": float(y[chunk].mean())})
    return out


# ---------------------------------------------------------------- formatting


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    """A short, readable number: up to ``digits`` significant digits, no exponent
    for everyday magnitudes, thousands separated."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        text = f"{value:.{max(digits - len(str(int(magnitude))), 0)}f}"
    elif magnitude >= 1e-4:
        text = f"{value:.{digits}g}"
        if "e" in text:
            text = f"{value:.6f}"
    else:
        text = f"{value:.2e}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100.0 * value:.{digits}f}%"


def _fixed(value: Any, digits: int = 4) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{number:.{digits}f}" if math.isfinite(number) else "–"


def _axis(largest: float, steps: int = 5) -> tuple[float, list[float]]:
    """``(top, ticks)`` of an axis from 0 that shows ``largest``: about ``steps``
    round steps (1, 2, 2.5 or 5 times a power of ten)."""
    largest = max(largest, 1e-9)
    raw = largest / steps
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-12))
    count = max(math.ceil(largest / step - 1e-9), 1)
    return count * step, [i * step for i in range(count + 1)]


# ---------------------------------------------------------------- SVG


class _Plot:
    """A plot area inside an SVG of ``width`` x ``height``: data ranges mapped to
    pixels, with margins for the axes."""

    def __init__(
        self, x_range: tuple[float, float], y_range: tuple[float, float], *,
        width: int = 520, height: int = 340, left: int = 58, right: int = 18, top: int = 16, bottom: int = 50,
    ) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def add(self, part: str) -> None:
        self.parts.append(part)

    def axes(
        self, x_ticks: Sequence[float], y_ticks: Sequence[float], *,
        x_label: str, y_label: str, x_format: Any = _num, y_format: Any = _num, x_grid: bool = True,
    ) -> None:
        for t in y_ticks:
            py = self.y(t)
            self.add(f'<line x1="{self.left}" x2="{self.right}" y1="{py:.1f}" y2="{py:.1f}" stroke="{_GRID}"/>')
            self.add(f'<text x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end" class="tick">'
                     f"{_e(y_format(t))}</text>")
        for t in x_ticks:
            px = self.x(t)
            if x_grid:
                self.add(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{self.top}" y2="{self.bottom}" stroke="{_GRID}"/>')
            self.add(f'<text x="{px:.1f}" y="{self.bottom + 16}" text-anchor="middle" class="tick">'
                     f"{_e(x_format(t))}</text>")
        self.add(f'<line x1="{self.left}" x2="{self.right}" y1="{self.bottom}" y2="{self.bottom}" stroke="{_MUTED}"/>')
        self.add(f'<line x1="{self.left}" x2="{self.left}" y1="{self.top}" y2="{self.bottom}" stroke="{_MUTED}"/>')
        cx = (self.left + self.right) / 2
        self.add(f'<text x="{cx:.1f}" y="{self.height - 10}" text-anchor="middle" class="axis">{_e(x_label)}</text>')
        cy = (self.top + self.bottom) / 2
        self.add(f'<text x="14" y="{cy:.1f}" text-anchor="middle" class="axis" '
                 f'transform="rotate(-90 14 {cy:.1f})">{_e(y_label)}</text>')

    def svg(self, title: str) -> str:
        body = "".join(self.parts)
        return (f'<svg viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{_e(title)}">'
                f"<title>{_e(title)}</title>{body}</svg>")


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{colour}"></i>{_e(label)}</span>' for label, colour in items
    ) + "</div>"


def _roc_svg(fpr: np.ndarray, tpr: np.ndarray, auc: float, ks: float) -> str:
    plot = _Plot((0.0, 1.0), (0.0, 1.0), width=440, height=400)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    plot.axes(ticks, ticks, x_label="false positive rate (goods declined)",
              y_label="true positive rate (bads caught)")
    plot.add(f'<line x1="{plot.x(0):.1f}" y1="{plot.y(0):.1f}" x2="{plot.x(1):.1f}" y2="{plot.y(1):.1f}" '
             f'stroke="{_MUTED}" stroke-dasharray="5 4"/>')
    if len(fpr) > _MAX_ROC_POINTS:
        keep = np.unique(np.r_[np.linspace(0, len(fpr) - 1, _MAX_ROC_POINTS).astype(int), len(fpr) - 1])
        fx, ty = fpr[keep], tpr[keep]
    else:
        fx, ty = fpr, tpr
    path = " ".join(f"{plot.x(a):.1f},{plot.y(b):.1f}" for a, b in zip(fx, ty, strict=True))
    area = f"{plot.x(0):.1f},{plot.y(0):.1f} {path} {plot.x(1):.1f},{plot.y(0):.1f}"
    plot.add(f'<polygon points="{area}" fill="{_GOOD}" fill-opacity="0.10"/>')
    plot.add(f'<polyline points="{path}" fill="none" stroke="{_GOOD}" stroke-width="2.5"/>')
    k = int(np.argmax(tpr - fpr))
    x, y0, y1 = plot.x(float(fpr[k])), plot.y(float(fpr[k])), plot.y(float(tpr[k]))
    plot.add(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}" stroke="{_BAD}" stroke-width="2"/>')
    plot.add(f'<text x="{x + 6:.1f}" y="{(y0 + y1) / 2:.1f}" class="note-svg" fill="{_BAD}">KS {_fixed(ks, 3)}</text>')
    plot.add(f'<text x="{plot.x(0.55):.1f}" y="{plot.y(0.12):.1f}" class="big-svg">AUC {_fixed(auc, 3)}</text>')
    plot.add(f'<text x="{plot.x(0.62):.1f}" y="{plot.y(0.56):.1f}" class="tick" '
             f'transform="rotate(-42 {plot.x(0.62):.1f} {plot.y(0.56):.1f})">chance</text>')
    return plot.svg("ROC curve on the holdout")


def _distribution_svg(good_scores: np.ndarray, bad_scores: np.ndarray) -> str:
    edges, goods = score_histogram(good_scores)
    _, bads = score_histogram(bad_scores)
    good_share = goods / max(int(goods.sum()), 1)
    bad_share = bads / max(int(bads.sum()), 1)
    top, ticks = _axis(float(max(good_share.max(initial=0), bad_share.max(initial=0), 0.01)))
    plot = _Plot((SCORE_MIN, SCORE_MAX), (0.0, top), width=1040, height=340, top=26)
    plot.axes(list(range(SCORE_MIN, SCORE_MAX + 1, 50)), ticks, x_grid=False,
              x_label="score", y_label="share of the class", y_format=lambda t: _pct(t, 0 if top >= 0.05 else 1))
    for (band, lo, hi), colour in zip(BANDS, _BAND_COLOURS, strict=True):
        if lo > SCORE_MIN:
            px = plot.x(lo)
            plot.add(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{plot.top - 12}" y2="{plot.bottom}" stroke="{_MUTED}" '
                     'stroke-dasharray="2 4"/>')
        cx = plot.x((lo + min(hi + 1, SCORE_MAX)) / 2)
        plot.add(f'<text x="{cx:.1f}" y="{plot.top - 12}" text-anchor="middle" class="tick" fill="{colour}">'
                 f'{_e(band.value.replace("_", " ").lower())}</text>')
    for shares, colour in ((good_share, _GOOD), (bad_share, _BAD)):
        for lo, hi, share in zip(edges[:-1], edges[1:], shares, strict=True):
            if share <= 0:
                continue
            x0, x1 = plot.x(lo) + 1, plot.x(hi) - 1
            y = plot.y(share)
            plot.add(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0:.1f}" height="{plot.bottom - y:.1f}" '
                     f'fill="{colour}" fill-opacity="0.45" stroke="{colour}" stroke-width="1"/>')
    return plot.svg("Score distribution of goods and bads on the holdout")


def _bands_svg(by_band: Sequence[Mapping[str, Any]]) -> str:
    rates = [b["bad_rate"] for b in by_band if b["bad_rate"] is not None]
    top, ticks = _axis(max(rates, default=0.0) * 1.12 or 0.1)
    plot = _Plot((0.0, float(len(by_band))), (0.0, top), width=520, height=340, bottom=62)
    plot.axes([], ticks, x_label="", y_label="bad rate",
              y_format=lambda t: _pct(t, 0 if top >= 0.05 else 1))
    for i, band in enumerate(by_band):
        colour = _BAND_COLOURS[i % len(_BAND_COLOURS)]
        cx = plot.x(i + 0.5)
        name = str(band["band"]).replace("_", " ").lower()
        plot.add(f'<text x="{cx:.1f}" y="{plot.bottom + 17}" text-anchor="middle" class="label-svg">{_e(name)}</text>')
        plot.add(f'<text x="{cx:.1f}" y="{plot.bottom + 32}" text-anchor="middle" class="tick">'
                 f'{band["lo"]}–{band["hi"]}</text>')
        plot.add(f'<text x="{cx:.1f}" y="{plot.bottom + 47}" text-anchor="middle" class="tick">n {band["n"]:,}</text>')
        rate = band["bad_rate"]
        if rate is None:
            plot.add(f'<text x="{cx:.1f}" y="{plot.bottom - 8}" text-anchor="middle" class="tick">no rows</text>')
            continue
        x0, x1 = plot.x(i + 0.18), plot.x(i + 0.82)
        y = plot.y(rate)
        plot.add(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0:.1f}" height="{plot.bottom - y:.1f}" '
                 f'rx="3" fill="{colour}"/>')
        plot.add(f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle" class="label-svg">{_pct(rate)}</text>')
    return plot.svg("Bad rate by score band on the holdout")


def _calibration_svg(groups: Sequence[Mapping[str, Any]]) -> str:
    top, ticks = _axis(max([g["predicted"] for g in groups] + [g["observed"] for g in groups] + [0.05]))
    plot = _Plot((0.0, top), (0.0, top), width=440, height=400)
    fmt = lambda t: _pct(t, 0 if top >= 0.1 else 1)  # noqa: E731
    plot.axes(ticks, ticks, x_label="predicted probability of bad (decile mean)",
              y_label="observed bad rate", x_format=fmt, y_format=fmt)
    plot.add(f'<line x1="{plot.x(0):.1f}" y1="{plot.y(0):.1f}" x2="{plot.x(top):.1f}" y2="{plot.y(top):.1f}" '
             f'stroke="{_MUTED}" stroke-dasharray="5 4"/>')
    points = " ".join(f"{plot.x(g['predicted']):.1f},{plot.y(g['observed']):.1f}" for g in groups)
    plot.add(f'<polyline points="{points}" fill="none" stroke="{_ACCENT}" stroke-width="1.5"/>')
    for g in groups:
        plot.add(f'<circle cx="{plot.x(g["predicted"]):.1f}" cy="{plot.y(g["observed"]):.1f}" r="5" '
                 f'fill="{_ACCENT}" stroke="white" stroke-width="1.5"/>')
    return plot.svg("Calibration: predicted against observed bad rate per decile")


def _iv_svg(rows: Sequence[tuple[str, float, bool]]) -> str:
    """Horizontal bars, one per (feature, IV, kept), already sorted."""
    longest = max((len(name) for name, _, _ in rows), default=10)
    label_width = int(min(max(160.0, 7.0 * min(longest, _MAX_LABEL) + 20.0), 440.0))
    bar_height, gap = 20, 8
    height = 30 + len(rows) * (bar_height + gap) + 26
    top, ticks = _axis(max([iv for _, iv, _ in rows] + [0.1]))
    plot = _Plot((0.0, top), (0.0, 1.0), width=1000, height=height, left=label_width, right=70, top=10, bottom=36)
    for t in ticks:
        px = plot.x(t)
        plot.add(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{plot.top}" y2="{plot.bottom}" stroke="{_GRID}"/>')
        plot.add(f'<text x="{px:.1f}" y="{plot.bottom + 16}" text-anchor="middle" class="tick">'
                 f"{_num(float(t), 3)}</text>")
    for threshold, label in ((0.02, "weak"), (0.1, "medium"), (0.3, "strong")):
        if threshold < top:
            px = plot.x(threshold)
            plot.add(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{plot.top}" y2="{plot.bottom}" stroke="{_MUTED}" '
                     f'stroke-dasharray="3 3"/>')
            plot.add(f'<text x="{px + 3:.1f}" y="{plot.top + 10}" class="tick">{label}</text>')
    for i, (name, iv, kept) in enumerate(rows):
        y = plot.top + 18 + i * (bar_height + gap)
        colour = _ACCENT if kept else "#b8c0c9"
        shown = name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"
        plot.add(f'<text x="{label_width - 10}" y="{y + 14}" text-anchor="end" class="label-svg"'
                 f'{"" if kept else f" fill={chr(34)}{_MUTED}{chr(34)}"}><title>{_e(name)}</title>{_e(shown)}</text>')
        width = max(plot.x(max(iv, 0.0)) - plot.left, 1.0)
        plot.add(f'<rect x="{plot.left}" y="{y}" width="{width:.1f}" height="{bar_height}" rx="2" fill="{colour}"/>')
        plot.add(f'<text x="{plot.left + width + 6:.1f}" y="{y + 14}" class="tick">{iv:.3f}</text>')
    plot.add(f'<text x="{(plot.left + plot.right) / 2:.1f}" y="{height - 4}" text-anchor="middle" class="axis">'
             "information value on the training sample</text>")
    return plot.svg("Information value per feature")


# ---------------------------------------------------------------- HTML

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f7f9;color:#1f2933;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif;-webkit-font-smoothing:antialiased}
main{max-width:1120px;margin:0 auto;padding:32px 28px 56px}
header h1{font-size:28px;margin:0 0 4px;font-weight:650;letter-spacing:-.01em}
header h1 .version{color:#0f766e}
header .desc{margin:4px 0;color:#3e4c59;max-width:900px}
header .meta{margin:2px 0 0;color:#6b7785;font-size:13px}
h2{font-size:18px;margin:0 0 4px;font-weight:620}
section{background:#fff;border:1px solid #e3e7ec;border-radius:10px;padding:20px 22px;margin-top:20px}
.note{color:#6b7785;font-size:13px;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;background:none;border:0;padding:0}
.card{background:#fff;border:1px solid #e3e7ec;border-radius:10px;padding:14px 16px}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:#6b7785}
.card .value{font-size:28px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.card .sub{font-size:12px;color:#6b7785}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 20px}
.grid section.wide{grid-column:1 / -1}
svg{width:100%;height:auto;display:block}
svg text{font-family:inherit}
svg .tick{font-size:11px;fill:#6b7785}
svg .axis{font-size:12px;fill:#3e4c59}
svg .label-svg{font-size:12.5px;fill:#1f2933}
svg .note-svg{font-size:12px;font-weight:600}
svg .big-svg{font-size:22px;font-weight:650;fill:#2f6db5}
.legend{display:flex;gap:18px;font-size:13px;color:#3e4c59;margin:0 0 6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px;
opacity:.75}
.warn{background:#fff4e5;border:1px solid #f5c26b;color:#7a4b00;border-radius:8px;padding:10px 14px;margin-top:16px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;text-align:right;border-bottom:1px solid #eef1f4;font-size:13.5px}
th{color:#6b7785;font-weight:560;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
th:first-child,td:first-child{text-align:left}
table.small td,table.small th{padding:3px 8px}
.features{display:grid;grid-template-columns:1fr 1fr;gap:0 28px}
.feature{margin-top:22px;min-width:0}
.feature h3{font-size:15px;margin:0;font-weight:620}
.feature h3 code{font-size:14px}
.feature .fmeta{color:#6b7785;font-size:12.5px;margin:2px 0 6px}
td.bin{overflow-wrap:anywhere;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
td.edge{white-space:nowrap}
td.best{font-weight:700;color:#0f766e}
td.neg{color:#c0392b}
tr.missing td{color:#52606d;background:#fafbfc}
.rate{display:flex;align-items:center;justify-content:flex-end;gap:8px}
.rate b{display:inline-block;height:8px;border-radius:2px;background:#d1495b;opacity:.7}
ul.dropped{margin:10px 0 0;padding-left:18px;color:#52606d;font-size:13px}
footer{color:#6b7785;font-size:12.5px;margin-top:24px}
@media (max-width:900px){.cards{grid-template-columns:repeat(3,1fr)}.grid,.features{grid-template-columns:1fr}}
"""


def _card(label: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
            f'<div class="sub">{_e(sub)}</div></div>')


def _bin_label(b: Mapping[str, Any]) -> str:
    """How a bin reads: ``< 0.46``, ``[0.46, 0.64)``, ``≥ 0.91``, ``all values``
    for a single numeric bin, a category list (``+ other`` where rare and unseen
    categories go), or a special value."""
    if isinstance(b.get("categories"), list):
        categories = [str(v) for v in b["categories"]]
        shown = " | ".join(categories[:8]) + (f" … (+{len(categories) - 8})" if len(categories) > 8 else "")
        return shown + (" + other" if b.get("other") else "")
    if "value" in b:
        return f"special {_num(b['value'], 6) if isinstance(b['value'], (int, float)) else b['value']}"
    lo, hi = b.get("lo"), b.get("hi")
    if lo is None and hi is None:
        return "all values"
    if lo is None:
        return f"< {_num(hi, 6)}"
    if hi is None:
        return f"≥ {_num(lo, 6)}"
    return f"[{_num(lo, 6)}, {_num(hi, 6)})"


def _missing_label(b: Mapping[str, Any]) -> str:
    pooled = b.get("special_values") or []
    return "no data" + (f" (and {', '.join(_num(v, 6) for v in pooled)})" if pooled else "")


def _feature_meta(f: Mapping[str, Any]) -> str:
    """What the feature is: the catalog's description for a catalog feature, else
    the artifact's label; its kind and direction where the artifact says."""
    name = str(f.get("name"))
    label = str(f.get("label") or "")
    text = by_name(name).description if name in FEATURE_NAMES else (label if label != name else "")
    facts = []
    if f.get("kind"):
        facts.append(str(f["kind"]))
    direction = f.get("direction")
    if direction in (1, -1) and f.get("kind") != "categorical":
        facts.append("higher is better" if direction == 1 else "lower is better")
    return " · ".join(part for part in (text, ", ".join(facts)) if part)


def _points_section(artifact: Mapping[str, Any]) -> str:
    features = artifact.get("features", [])
    worst_rate = max(
        [b.get("bad_rate") or 0.0 for f in features for b in [*f.get("bins", []), f.get("missing", {})]] + [1e-9]
    )
    blocks = []
    for f in features:
        rows = [(_bin_label(b), b, False) for b in f.get("bins", [])]
        rows += [(_bin_label({"value": b.get("value")}), b, False) for b in f.get("special", []) or []]
        if "missing" in f:
            rows.append((_missing_label(f["missing"]), f["missing"], True))
        best = max(float(b.get("points", 0.0)) for _, b, _ in rows)
        body = []
        for label, b, is_missing in rows:
            rate = b.get("bad_rate")
            bar = f'<b style="width:{60 * (rate or 0.0) / worst_rate:.0f}px"></b>' if rate is not None else ""
            points = float(b.get("points", 0.0))
            cls = "best" if points == best else ("neg" if points < 0 else "")
            kind = "bin" if isinstance(b.get("categories"), list) else "bin edge"
            body.append(
                f'<tr{" class=missing" if is_missing else ""}><td class="{kind}">{_e(label)}</td>'
                f"<td>{_num(b.get('count'))}</td>"
                f'<td><span class="rate">{bar}{_pct(rate)}</span></td>'
                f"<td>{_fixed(b.get('woe'), 3)}</td>"
                f'<td class="{cls}">{_fixed(points, 1)}</td></tr>'
            )
        description = _feature_meta(f)
        meta = [f"IV {_fixed(f.get('iv'), 3)}", f"coefficient {_fixed(f.get('coefficient'), 3)}",
                f"points {_fixed(min(float(b.get('points', 0.0)) for _, b, _ in rows), 1)} to {_fixed(best, 1)}"]
        blocks.append(
            f'<div class="feature"><h3><code>{_e(f.get("name"))}</code></h3>'
            f'<div class="fmeta">{_e(description + " · " if description else "")}{_e(" · ".join(meta))}</div>'
            "<table><thead><tr><th>bin</th><th>count</th><th>bad rate</th><th>WoE</th><th>points</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    intercept = float(artifact.get("intercept_points", 0.0) or 0.0)
    note = ("Points of a subject = the sum of the points of the bin each feature puts them in"
            + (f", plus {_fixed(intercept, 1)} for everyone" if intercept else "")
            + "; the score is that sum rounded and clamped to 350–950. Counts, bad rates and WoE are "
              "training-sample statistics. The highest-scoring bin of each feature is in bold: a reason "
              "is the gap between it and the subject's bin.")
    return (f'<section id="points"><h2>Points table</h2><p class="note">{_e(note)}</p>'
            '<div class="features">' + "".join(blocks) + "</div></section>")


def _iv_section(artifact: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """IV bars: the model's features from the artifact, the dropped ones from their
    ``dropped`` entry or, failing that, the metrics' IV table."""
    given = metrics.get("iv")
    known: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    rows: list[tuple[str, float, bool]] = [
        (str(f["name"]), float(f.get("iv", known.get(f["name"], 0.0)) or 0.0), True)
        for f in artifact.get("features", [])
    ]
    dropped = [d for d in artifact.get("dropped", []) or [] if isinstance(d, Mapping)]
    for d in dropped:
        iv = d.get("iv", known.get(str(d.get("name"))))
        if iv is not None:
            rows.append((str(d.get("name")), float(iv), False))
    rows.sort(key=lambda r: (-r[1], r[0]))
    by_reason: dict[str, list[str]] = {}
    for d in dropped:
        by_reason.setdefault(str(d.get("reason", "")), []).append(str(d.get("name")))
    items = "".join(
        f"<li>{_e(reason or 'dropped')}: " + ", ".join(f"<code>{_e(name)}</code>" for name in names) + "</li>"
        for reason, names in by_reason.items()
    )
    return (
        '<section id="iv"><h2>Information value per feature</h2>'
        '<p class="note">How much each feature separates goods from bads on its own (training sample). '
        "In colour the features in the model, in grey those the trainer left out.</p>"
        + _legend([("in the model", _ACCENT), ("dropped", "#b8c0c9")])
        + _iv_svg(rows)
        + (f'<ul class="dropped">{items}</ul>' if items else "")
        + "</section>"
    )


def _holdout(result: TrainResultLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The scored holdout rows ``(y, score, pd)`` and how many rows were not scored."""
    y = np.asarray(result.y_holdout).astype(np.int64)
    score = np.asarray(result.score_holdout, dtype=np.float64)
    pd = np.asarray(result.pd_holdout, dtype=np.float64)
    if not (y.shape == score.shape == pd.shape) or y.ndim != 1:
        raise ValueError(
            f"holdout arrays must be one-dimensional and of one length, not {y.shape}, {score.shape}, {pd.shape}"
        )
    scored = np.isfinite(pd) & np.isfinite(score) & (score >= SCORE_MIN)
    if not scored.any():
        raise ValueError("no holdout row was scored: nothing to report")
    return y[scored], score[scored], pd[scored], int((~scored).sum())


def _calibration(metrics: Mapping[str, Any], y: np.ndarray, pd: np.ndarray) -> list[dict[str, Any]]:
    """The trainer's calibration table (holdout deciles by score, with their score
    ranges) when the metrics carry one, else deciles of the holdout arrays."""
    given = metrics.get("calibration")
    if isinstance(given, list) and given and all(
        isinstance(g, Mapping) and {"n", "predicted", "observed"} <= set(g) for g in given
    ):
        return [dict(g) for g in given]
    return calibration_by_decile(y, pd)


def _cards(metrics: Mapping[str, Any], scaling: Mapping[str, Any], headline: tuple[float, float, float],
           n_holdout: Any, bad_rate: Any) -> str:
    """The headline cards: AUC, Gini, KS, rows, bad rate, PDO."""
    auc, gini, ks = headline
    n_train = metrics.get("n_train")
    return "".join([
        _card("AUC", _fixed(auc, 3), "holdout" + (f" · train {_fixed(metrics['train_auc'], 3)}"
                                                  if metrics.get("train_auc") is not None else "")),
        _card("Gini", _fixed(gini, 3), "2 · AUC − 1"),
        _card("KS", _fixed(ks, 3), "largest gap of the two CDFs"),
        _card("Rows", _num(float((n_train or 0) + n_holdout)),
              f"train {_num(n_train)} · holdout {_num(n_holdout)}"),
        _card("Bad rate", _pct(bad_rate), "holdout" + (f" · train {_pct(metrics['train_bad_rate'])}"
                                                       if metrics.get("train_bad_rate") is not None else "")),
        _card("PDO", _fixed(scaling.get("pdo"), 1),
              f"factor {_fixed(scaling.get('factor'), 2)} · offset {_fixed(scaling.get('offset'), 1)}"),
    ])


def _bands_section(by_band: list[dict[str, Any]]) -> str:
    falls = all(later["bad_rate"] < earlier["bad_rate"] for earlier, later in pairwise(b for b in by_band if b["n"]))
    band_rows = "".join(
        f"<tr><td>{_e(b['band'].replace('_', ' ').lower())}</td><td>{b['lo']}–{b['hi']}</td><td>{b['n']:,}</td>"
        f"<td>{b['bads']:,}</td><td>{_pct(b['bad_rate'])}</td></tr>" for b in by_band
    )
    return (
        '<section id="bands" class="wide"><h2>Bad rate by band</h2>'
        f'<p class="note">Holdout bad rate per score band; it should fall as the band rises '
        f"({'it does' if falls else 'it does not'}).</p>"
        '<div class="grid"><div>' + _bands_svg(by_band) + "</div><div>"
        '<table><thead><tr><th>band</th><th>scores</th><th>rows</th><th>bads</th><th>bad rate</th></tr></thead>'
        f"<tbody>{band_rows}</tbody></table></div></div></section>"
    )


def _calibration_section(groups: list[dict[str, Any]]) -> str:
    with_scores = all("score_lo" in g and "score_hi" in g for g in groups)
    calibration_rows = "".join(
        f"<tr><td>{i + 1}</td>"
        + (f"<td>{g['score_lo']}–{g['score_hi']}</td>" if with_scores else "")
        + f"<td>{g['n']:,}</td><td>{_pct(g['predicted'], 2)}</td><td>{_pct(g['observed'], 2)}</td></tr>"
        for i, g in enumerate(groups)
    )
    calibration_head = ("<th>decile</th>" + ("<th>scores</th>" if with_scores else "")
                        + "<th>rows</th><th>predicted</th><th>observed</th>")
    return (
        '<section id="calibration"><h2>Calibration</h2>'
        '<p class="note">Holdout rows in ten groups of equal size, lowest score (highest risk) first: '
        "the mean predicted probability of bad against the observed bad rate. On the dashed line they "
        "agree.</p>"
        f"{_calibration_svg(groups)}"
        f'<table class="small"><thead><tr>{calibration_head}</tr>'
        f"</thead><tbody>{calibration_rows}</tbody></table></section>"
    )


def _header(artifact: Mapping[str, Any]) -> list[str]:
    version = str(artifact.get("version", "?"))
    train_time = artifact.get("train_time", "")
    training = artifact.get("training", {}) or {}
    settings = ", ".join(f"{k} {v}" for k, v in training.items() if isinstance(v, (int, float, str)))
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Scorecard {_e(version)} — model report</title><style>{_CSS}</style></head><body><main>",
        f'<header><h1>Scorecard <span class="version">{_e(version)}</span></h1>',
        f'<p class="desc">{_e(artifact.get("description", ""))}</p>',
        f'<p class="meta">trained {_e(train_time)} · {len(artifact.get("features", []))} features in the model'
        f"{' · ' + _e(settings) if settings else ''}</p></header>",
    ]


def render_report(result: TrainResultLike) -> str:
    """The report of ``result`` as one HTML document (see the module docstring)."""
    artifact = result.artifact
    metrics: Mapping[str, Any] = result.metrics if result.metrics is not None else artifact.get("metrics", {})
    y, score, pd, not_scored = _holdout(result)
    if y.min() == y.max():
        raise ValueError("the scored holdout needs both bads and goods")

    fpr, tpr = roc_curve(y, pd)
    auc = float(metrics.get("auc", float(np.trapezoid(tpr, fpr))))
    ks = float(metrics.get("ks", float(np.max(tpr - fpr))))
    gini = float(metrics.get("gini", 2 * auc - 1))
    n_holdout = metrics.get("n_holdout", len(y) + not_scored)
    bad_rate = metrics.get("bad_rate", float(y.mean()))
    cards = _cards(metrics, artifact.get("scaling", {}), (auc, gini, ks), n_holdout, bad_rate)
    warnings = [str(w) for w in metrics.get("warnings", []) or []]
    scored_note = (f"{len(y):,} scored holdout rows" + (f"; {not_scored:,} had too little data to score "
                                                         "and are left out" if not_scored else ""))
    parts = [
        *_header(artifact),
        f'<section id="headline" class="cards">{cards}</section>',
        "".join(f'<div class="warn">⚠ {_e(w)}</div>' for w in warnings),
        '<div class="grid">',
        '<section id="roc"><h2>ROC curve</h2>'
        f'<p class="note">{_e(scored_note)}. Ranked by probability of bad; the dashed diagonal is '
        "a model that ranks by chance, the red bar the KS distance.</p>"
        f"{_roc_svg(fpr, tpr, auc, ks)}</section>",
        _calibration_section(_calibration(metrics, y, pd)),
        '<section id="distribution" class="wide"><h2>Score distribution of goods and bads</h2>'
        f'<p class="note">Holdout scores in bars of {HISTOGRAM_STEP} points, each as a share of its own '
        "class: the less the two overlap, the better the score separates them.</p>"
        + _legend([(f"goods ({int((y == 0).sum()):,})", _GOOD), (f"bads ({int((y == 1).sum()):,})", _BAD)])
        + f"{_distribution_svg(score[y == 0], score[y == 1])}</section>",
        _bands_section(bad_rate_by_band(y, score)),
        "</div>",
        _iv_section(artifact, metrics),
        _points_section(artifact),
        "<footer>AUC, Gini and KS are the trainer's holdout metrics for the scorecard as written (rounded "
        "points); the charts are drawn from the same holdout rows. Score = offset + factor · ln(good:bad "
        "odds), factor = PDO / ln 2, clamped to 350–950.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(result: TrainResultLike, path: str | Path) -> Path:
    """Writes the HTML report of ``result`` to ``path`` (atomically: a temporary
    file renamed into place, readable by all) and returns the path. Raises
    ``ValueError`` when the holdout arrays are malformed or hold no scored row
    with both goods and bads."""
    return write_atomically(path, render_report(result), REPORT_MODE)
