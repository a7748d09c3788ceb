"""The model file as the trainer writes it: the scaling anchored on the training
population, every kept feature's bins with their statistics and points, the
training population's distribution for PSI, and the file itself (``save_model``)
and its short text report (``format_report``). The format and its reading and
scoring are ``creditscore.scorecard.model``'s.

Scaling: ``factor`` and ``offset`` put the 1st and 99th percentiles of the training
ln(good:bad odds) (rows with enough coverage) at 420 and 880, so that scores
spread over 350-950 without piling up at either end; PDO = factor * ln 2 is
recorded. Points per bin: ``-factor * beta * WoE + (offset - factor * alpha) /
n_features``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ._files import write_atomically
from .binning import NUMERIC, Binning
from .config import TrainingConfig
from .errors import Problem, raise_problems
from .model import ARTIFACT_FORMAT, SCORE_MAX, SCORE_MIN, BatchScores, Scaling, Scorecard

__all__ = [
    "ANCHOR_HIGH",
    "ANCHOR_LOW",
    "ARTIFACT_MODE",
    "SCORE_HISTOGRAM_STEP",
    "AnchoredScaling",
    "anchored_scaling",
    "feature_entries",
    "format_report",
    "model_file",
    "population_distribution",
    "save_model",
]

ANCHOR_LOW = (1.0, 420.0)  # (percentile of training ln odds, score)
ANCHOR_HIGH = (99.0, 880.0)
SCORE_HISTOGRAM_STEP = 25
ARTIFACT_MODE = 0o644  # an artifact is read by services running as other users

Floats = npt.NDArray[np.float64]


class AnchoredScaling(NamedTuple):
    """The scaling, and the training ln(good:bad odds) at its two anchors."""

    scaling: Scaling
    low: float
    high: float

    def to_json(self) -> dict[str, Any]:
        s = self.scaling
        return {
            "pdo": s.pdo,
            "factor": s.factor,
            "offset": s.offset,
            "clamp": [SCORE_MIN, SCORE_MAX],
            "anchors": {
                "method": "percentiles of the training ln(good:bad odds)",
                "low": {"percentile": ANCHOR_LOW[0], "log_odds": round(self.low, 6), "score": ANCHOR_LOW[1]},
                "high": {"percentile": ANCHOR_HIGH[0], "log_odds": round(self.high, 6), "score": ANCHOR_HIGH[1]},
            },
        }


def anchored_scaling(log_odds_good: Floats, scored: npt.NDArray[np.bool_]) -> AnchoredScaling:
    """The scaling that puts the anchor percentiles of the training rows'
    ``log_odds_good`` (the ``scored`` ones; all when none is) at the anchor scores.
    ``TrainingError`` when the log odds are flat."""
    anchor_pool = log_odds_good[scored] if scored.any() else log_odds_good
    low, high = (float(v) for v in np.percentile(anchor_pool, [ANCHOR_LOW[0], ANCHOR_HIGH[0]]))
    if not high > low:
        raise_problems([Problem("columns", "the model does not separate the training population (flat log odds)")])
    factor = (ANCHOR_HIGH[1] - ANCHOR_LOW[1]) / (high - low)
    offset = ANCHOR_LOW[1] - factor * low
    return AnchoredScaling(Scaling(pdo=factor * math.log(2), factor=factor, offset=offset), low, high)


def _stats(count: int, bads: int, woe: float, iv: float, points: float) -> dict[str, Any]:
    return {
        "count": count,
        "bads": bads,
        "bad_rate": round(bads / count, 6) if count else None,
        "woe": round(woe, 6),
        "iv": round(iv, 6),
        "points": round(points, 4),
    }


def _edge_json(edge: float) -> float | None:
    return None if math.isinf(edge) else edge


def _regular_bins_json(binning: Binning, stats: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    r = binning.n_regular
    if binning.spec.kind == NUMERIC:
        los = [-math.inf, *binning.edges]
        his = [*binning.edges, math.inf]
        return [{"lo": _edge_json(los[i]), "hi": _edge_json(his[i]), **stats[i]} for i in range(r)]
    return [
        {"categories": list(group), **({"other": True} if i == binning.other_bin else {}), **stats[i]}
        for i, group in enumerate(binning.groups)
    ]


def _feature_json(binning: Binning, coefficient: float, points: Floats) -> dict[str, Any]:
    spec = binning.spec
    stats = [
        _stats(c, b, w, v, float(p))
        for c, b, w, v, p in zip(binning.counts, binning.bads, binning.woe, binning.iv_bins, points, strict=True)
    ]
    out: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "direction": binning.direction,
    }
    if spec.kind == NUMERIC:
        out["value_type"] = binning.value_type
    out.update(
        {
            "label": spec.label,
            "reason_code": spec.reason_code,
            "reason_text": spec.reason_text,
            "missing_reason_code": spec.missing_reason_code,
            "missing_text": spec.missing_text,
            "actionable": spec.actionable,
            "improve_hint": spec.improve_hint,
            "coefficient": round(coefficient, 6),
            "iv": round(binning.iv, 6),
        }
    )
    out["bins"] = _regular_bins_json(binning, stats)
    r = binning.n_regular
    if binning.specials:
        out["special"] = [{"value": v, **stats[r + k]} for k, v in enumerate(binning.specials)]
    out["missing"] = stats[-1]
    if binning.pooled_specials:
        out["missing"]["special_values"] = list(binning.pooled_specials)
    return out


def feature_entries(
    binnings: Sequence[Binning], beta: Floats, alpha: float, scaling: Scaling
) -> list[dict[str, Any]]:
    """The model file's ``features``: per kept feature (``binnings``, with its
    coefficient in ``beta``) its bins, statistics and points."""
    factor, offset = scaling.factor, scaling.offset
    shared = (offset - factor * alpha) / len(binnings)
    return [
        _feature_json(binning, float(b), -factor * float(b) * np.asarray(binning.woe) + shared)
        for binning, b in zip(binnings, beta, strict=True)
    ]


def model_file(
    config: TrainingConfig,
    scaling: AnchoredScaling,
    *,
    features: list[dict[str, Any]],
    dropped: list[dict[str, Any]],
    training: dict[str, Any],
) -> dict[str, Any]:
    """The model file (a dict, keys in the order they are written) of a training
    run with ``config``, before its holdout metrics are known: ``metrics`` holds
    zeros until they are."""
    when = (config.train_time or datetime.now(UTC)).astimezone(UTC)
    return {
        "format": ARTIFACT_FORMAT,
        "version": config.version,
        "description": config.description,
        "train_time": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "scaling": scaling.to_json(),
        "min_coverage": config.min_coverage,
        "intercept_points": 0.0,
        "features": features,
        "dropped": dropped,
        "metrics": {"auc": 0.0, "ks": 0.0, "gini": 0.0},
        "training": training,
    }


def population_distribution(binnings: Sequence[Binning], trained: BatchScores) -> dict[str, Any]:
    """The training population for PSI: the shares of the scored training rows per
    25-point score bin, and per model feature the share of the training rows in
    each of its bins (the binning's counts: they are the training rows' bins)."""
    edges = list(range(SCORE_MIN, SCORE_MAX + 1, SCORE_HISTOGRAM_STEP))
    counts, _ = np.histogram(trained.scores[~trained.insufficient], bins=edges)
    scored = max(int((~trained.insufficient).sum()), 1)
    features = {}
    for binning in binnings:
        n = max(sum(binning.counts), 1)
        shares = [c / n for c in binning.counts]
        r = binning.n_regular
        entry: dict[str, Any] = {"bins": [round(s, 6) for s in shares[:r]]}
        if binning.specials:
            entry["special"] = [round(s, 6) for s in shares[r:-1]]
        entry["missing"] = round(shares[-1], 6)
        features[binning.name] = entry
    return {
        "score": {
            "edges": edges,
            "shares": [round(float(c) / scored, 6) for c in counts],
            "insufficient_share": round(float(trained.insufficient.mean()), 6),
        },
        "features": features,
    }


def save_model(artifact: Mapping[str, Any], path: str | Path) -> Path:
    """Validates ``artifact`` and writes it as indented JSON to ``path`` atomically
    (a temporary file renamed into place), readable by all. Returns the path."""
    Scorecard.from_dict(artifact)
    return write_atomically(path, json.dumps(artifact, indent=2, allow_nan=False) + "\n", ARTIFACT_MODE)


def format_report(artifact: Mapping[str, Any]) -> str:
    """The metrics of an artifact as a short text report."""
    m = artifact["metrics"]
    s = artifact["scaling"]
    train_auc = m.get("train_auc")
    lines = [
        f"scorecard {artifact['version']}: {artifact['description']}",
        f"holdout  AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Gini {m['gini']:.4f}"
        + (f"  (train AUC {train_auc:.4f})" if isinstance(train_auc, (int, float)) else ""),
        f"rows     train {m['n_train']}  holdout {m['n_holdout']} (scored {m.get('n_holdout_scored', '?')})"
        f"  bad rate {m['bad_rate']:.4f}",
        f"scaling  PDO {s['pdo']:.2f}  factor {s['factor']:.3f}  offset {s['offset']:.2f}",
        "bad rate by band (holdout):",
    ]
    for b in m.get("bad_rate_by_band", []):
        rate = "   -  " if b["bad_rate"] is None else f"{b['bad_rate']:.4f}"
        lines.append(f"  {b['band']:<10} {b['lo']}-{b['hi']}  n {b['n']:>6}  bad rate {rate}")
    calibration = m.get("calibration", [])
    if calibration:
        lines.append("calibration by score decile (holdout): predicted / observed bad rate")
        lines.append("  " + "  ".join(f"{g['predicted']:.3f}/{g['observed']:.3f}" for g in calibration))
    lines.append("features:")
    for f in artifact["features"]:
        extra = f"  special {len(f['special'])}" if f.get("special") else ""
        lines.append(
            f"  {f['name']:<32} {f.get('kind', NUMERIC):<11} IV {f.get('iv', float('nan')):.3f}"
            f"  coef {f['coefficient']:+.3f}  bins {len(f['bins'])}{extra}"
        )
    for d in artifact.get("dropped", []):
        lines.append(f"  dropped {d['name']}: {d['reason']}")
    for w in m.get("warnings", []):
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)
