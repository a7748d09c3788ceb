"""Drift: the population stability index (PSI) of the score and of each feature of a
scorecard's recent scores against the population it was trained on.

Pure numpy: no gRPC, no SQL. The store reads the scores of a window; this module
bins them and compares.

The arithmetic
--------------

``PSI = sum over bins of (a - e) * ln(a / e)`` where ``a`` is the share of the
recent population in a bin and ``e`` the share of the training population, each
share raised to ``epsilon`` (1e-4) where it is smaller, so that an empty bin
counts as rare instead of dividing by zero. Identical distributions give 0; the
usual reading is: below 0.1 stable, 0.1 to 0.25 worth watching, 0.25 or more
shifted (``status_for``).

- **Score PSI** compares the scored subjects (INSUFFICIENT_DATA scores have no
  score; their share is reported beside the PSI) over the bins of the artifact's
  training score histogram (``training_distribution.score``: ``edges`` 350..950,
  ``shares`` of the scored training rows). That histogram is fine-grained
  (25 points) for people to read; for PSI its adjacent bins are merged, lowest
  first, until each holds at least ``SCORE_BIN_MIN_SHARE`` (a tenth) of the
  training population (``merge_histogram``): PSI over many sparsely filled bins
  measures sampling noise (about ``(bins - 1) / n`` for ``n`` scores) more than
  drift.
- **Feature PSI** bins each model feature's stored values with the model's own
  bins (``Scorecard.bin_index``: regular bins, special-value bins, the "no data"
  bin) against ``training_distribution.features[name]``: ``bins`` (shares of the
  regular bins in the model's bin order), ``special`` (of the special bins, when the
  feature has any) and ``missing`` (the share with no data) — the layout the trainer
  writes. A ``bins`` list as long as all of the feature's bins, with no
  ``missing`` key, is read as already holding the special and "no data" shares.
  Every kind of bin takes part: numeric ranges, categorical groups (an unseen
  category falls where the model scores it), special values, "no data". A
  feature whose entry is absent or does not match the model's bins is not
  measured, and the report says so (``DriftReport.unmeasured``, with the reason)
  instead of leaving it out silently.
- Fewer than ``min_scores`` scores (default 100) give INSUFFICIENT_DATA and no
  PSI: the score PSI counts scored subjects, a feature PSI counts all scores.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from .binning import NUMERIC
from .model import Scorecard

__all__ = [
    "DEFAULT_MIN_SCORES",
    "MONITOR_FROM",
    "PSI_EPSILON",
    "SCORE_BIN_MIN_SHARE",
    "SHIFTED_FROM",
    "DriftReport",
    "DriftStatus",
    "FeatureDrift",
    "NoTrainingDistribution",
    "TrainingDistribution",
    "compute_drift",
    "histogram_shares",
    "merge_histogram",
    "psi",
    "status_for",
    "training_distribution",
]

PSI_EPSILON = 1e-4
MONITOR_FROM = 0.1
SHIFTED_FROM = 0.25
DEFAULT_MIN_SCORES = 100
SCORE_BIN_MIN_SHARE = 0.1


class DriftStatus(enum.Enum):
    STABLE = "STABLE"  # PSI < 0.1
    MONITOR = "MONITOR"  # 0.1 <= PSI < 0.25
    SHIFTED = "SHIFTED"  # PSI >= 0.25
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"  # too few scores for a PSI


class NoTrainingDistribution(ValueError):
    """The artifact has no usable ``training_distribution.score``: drift cannot be
    measured against it. The message says what is missing."""


def psi(actual: Sequence[float] | np.ndarray, expected: Sequence[float] | np.ndarray,
        epsilon: float = PSI_EPSILON) -> float:
    """``sum((a - e) * ln(a / e))`` over bins, each share at least ``epsilon``.
    ``actual`` and ``expected`` are shares (or counts) per bin, in the same bin
    order; each is normalised to sum to one first."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"actual and expected must be equally long, non-empty vectors ({a.shape} vs {e.shape})")
    if (a < 0).any() or (e < 0).any() or a.sum() <= 0 or e.sum() <= 0:
        raise ValueError("shares must be non-negative and not all zero")
    a = np.maximum(a / a.sum(), epsilon)
    e = np.maximum(e / e.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def status_for(value: float) -> DriftStatus:
    """STABLE below 0.1, MONITOR from 0.1 to below 0.25, SHIFTED from 0.25."""
    if value < MONITOR_FROM:
        return DriftStatus.STABLE
    if value < SHIFTED_FROM:
        return DriftStatus.MONITOR
    return DriftStatus.SHIFTED


def merge_histogram(
    edges: Sequence[float], shares: Sequence[float], min_share: float = SCORE_BIN_MIN_SHARE
) -> tuple[list[float], list[float]]:
    """Merges adjacent histogram bins, lowest first, until each holds at least
    ``min_share``; a remainder under ``min_share`` at the top joins the bin below
    it. Returns the kept edges (a subset of ``edges``, first and last included)
    and the merged shares."""
    if len(edges) != len(shares) + 1 or not shares:
        raise ValueError("a histogram has one edge more than it has bins")
    out_edges = [float(edges[0])]
    out_shares: list[float] = []
    running = 0.0
    for i, share in enumerate(shares):
        running += float(share)
        if running >= min_share - 1e-12 and i < len(shares) - 1:
            out_edges.append(float(edges[i + 1]))
            out_shares.append(running)
            running = 0.0
    out_edges.append(float(edges[-1]))
    out_shares.append(running)
    if len(out_shares) > 1 and out_shares[-1] < min_share - 1e-12:
        tail = out_shares.pop()
        out_shares[-1] += tail
        del out_edges[-2]
    return out_edges, out_shares


def histogram_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of ``values`` per bin ``[edges[i], edges[i+1])``, the last bin closed
    (a score of 950 falls in the top bin); values outside the edges are clipped
    into the end bins."""
    e = np.asarray(edges, dtype=np.float64)
    v = np.clip(np.asarray(values, dtype=np.float64), e[0], e[-1])
    counts, _ = np.histogram(v, bins=e)
    return counts.astype(np.float64)


@dataclass(frozen=True)
class TrainingDistribution:
    """The training population of a scorecard, as PSI needs it."""

    score_edges: tuple[float, ...]  # the merged PSI bins of the score
    score_shares: tuple[float, ...]
    insufficient_share: float
    # feature -> shares of its bins in the model's layout: regular, special, "no data"
    features: Mapping[str, tuple[float, ...]]
    # model features whose drift cannot be measured -> why (no entry, other bins)
    unmeasured: Mapping[str, str] = field(default_factory=dict)


def _bin_count(feature: Mapping[str, Any]) -> int:
    """How many bins ``Scorecard.bin_index`` tells apart for a feature of the
    artifact: regular, special, and the "no data" bin."""
    return len(feature["bins"]) + len(feature.get("special") or ()) + 1


def _shares(raw: Any, where: str) -> list[float]:
    if not isinstance(raw, list) or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in raw
    ):
        raise NoTrainingDistribution(f"{where} must be a list of non-negative numbers")
    return [float(x) for x in raw]


def training_distribution(card: Scorecard, min_share: float = SCORE_BIN_MIN_SHARE) -> TrainingDistribution:
    """Reads ``training_distribution`` from ``card``'s artifact.
    ``NoTrainingDistribution`` when the score histogram is absent or malformed; a
    feature whose entry is absent or does not match the model's bins is left out
    of ``features`` and named in ``unmeasured`` with the reason (its drift cannot
    be measured, the others still can)."""
    section = card.artifact.get("training_distribution")
    if not isinstance(section, Mapping) or not isinstance(section.get("score"), Mapping):
        raise NoTrainingDistribution(
            f"scorecard {card.version} records no training score distribution (training_distribution.score)"
        )
    score = section["score"]
    edges = _shares(score.get("edges"), "training_distribution.score.edges")
    shares = _shares(score.get("shares"), "training_distribution.score.shares")
    if len(edges) != len(shares) + 1 or len(shares) == 0 or any(b <= a for a, b in pairwise(edges)):
        raise NoTrainingDistribution(
            "training_distribution.score needs increasing edges, one more than its shares"
        )
    if sum(shares) <= 0:
        raise NoTrainingDistribution("training_distribution.score.shares are all zero")
    total = sum(shares)
    merged_edges, merged_shares = merge_histogram(edges, [s / total for s in shares], min_share)
    insufficient = score.get("insufficient_share", 0.0)
    insufficient = float(insufficient) if isinstance(insufficient, (int, float)) else 0.0

    features: dict[str, tuple[float, ...]] = {}
    unmeasured: dict[str, str] = {}
    recorded = section.get("features")
    recorded = recorded if isinstance(recorded, Mapping) else {}
    for feature in card.artifact["features"]:
        name = feature["name"]
        entry = recorded.get(name)
        if not isinstance(entry, Mapping):
            unmeasured[name] = "no training distribution recorded"
            continue
        try:
            full = _shares(entry.get("bins"), "bins")
            if "missing" in entry:
                full += _shares(entry.get("special", []), "special") + _shares([entry["missing"]], "missing")
        except NoTrainingDistribution as exc:
            unmeasured[name] = f"training distribution malformed: {exc}"
            continue
        if len(full) != _bin_count(feature) or sum(full) <= 0:
            unmeasured[name] = (
                f"training distribution has {len(full)} shares for the model's {_bin_count(feature)} bins"
                if len(full) != _bin_count(feature) else "training distribution is all zero"
            )
            continue
        features[name] = tuple(full)
    return TrainingDistribution(tuple(merged_edges), tuple(merged_shares), insufficient, features, unmeasured)


def _columns(
    card: Scorecard, names: Sequence[str], vectors: Sequence[Mapping[str, Any]]
) -> dict[str, np.ndarray]:
    """The stored vectors as named columns, as ``Scorecard.bin_index`` takes them:
    float64 with NaN for no data (numeric features), objects with None
    (categorical ones)."""
    columns: dict[str, np.ndarray] = {}
    for name in names:
        values = [v.get(name) for v in vectors]
        if card.kinds.get(name, NUMERIC) == NUMERIC:
            columns[name] = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
        else:
            columns[name] = np.array(values, dtype=object)
    return columns


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float | None  # None when INSUFFICIENT_DATA
    status: DriftStatus


@dataclass(frozen=True)
class DriftReport:
    """The drift of one scorecard version over some scores."""

    version: str
    status: DriftStatus  # of the score PSI
    score_psi: float | None  # None when INSUFFICIENT_DATA
    features: tuple[FeatureDrift, ...]  # model order; features without a training distribution left out
    scores_used: int  # any state
    insufficient_share: float  # share of scores_used that were INSUFFICIENT_DATA
    training_insufficient_share: float
    # the features left out, and why (``TrainingDistribution.unmeasured``)
    unmeasured: Mapping[str, str] = field(default_factory=dict)


def compute_drift(
    card: Scorecard,
    scores: Sequence[float | None] | np.ndarray,
    vectors: Sequence[Mapping[str, float | None]],
    *,
    min_scores: int = DEFAULT_MIN_SCORES,
    distribution: TrainingDistribution | None = None,
) -> DriftReport:
    """The PSI of ``scores`` (one per stored score; None or NaN where it was
    INSUFFICIENT_DATA) and of each model feature of ``vectors`` (the stored feature
    vectors, in the same order; an absent name is "no data") against ``card``'s
    training population. ``NoTrainingDistribution`` when the artifact has none."""
    if len(scores) != len(vectors):
        raise ValueError("one feature vector per score")
    dist = distribution or training_distribution(card)
    values = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    n = int(values.size)
    scored = values[~np.isnan(values)]
    insufficient_share = float((n - scored.size) / n) if n else 0.0

    if scored.size >= max(1, min_scores):
        measured_psi = psi(histogram_shares(scored, dist.score_edges), dist.score_shares)
        score_psi: float | None = measured_psi
        status = status_for(measured_psi)
    else:
        score_psi, status = None, DriftStatus.INSUFFICIENT_DATA

    measured = [name for name in card.features if name in dist.features]
    features: list[FeatureDrift] = []
    if n < max(1, min_scores):
        features = [FeatureDrift(name, None, DriftStatus.INSUFFICIENT_DATA) for name in measured]
    elif measured:
        index = card.bin_index(_columns(card, measured, vectors), n_rows=n)
        position = {name: k for k, name in enumerate(card.features)}
        for name in measured:
            expected = dist.features[name]
            value = psi(np.bincount(index[:, position[name]], minlength=len(expected)), expected)
            features.append(FeatureDrift(name, value, status_for(value)))
    return DriftReport(
        version=card.version,
        status=status,
        score_psi=score_psi,
        features=tuple(features),
        scores_used=n,
        insufficient_share=insufficient_share,
        training_insufficient_share=dist.insufficient_share,
        unmeasured=dict(dist.unmeasured),
    )
