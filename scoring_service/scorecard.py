"""Scorecards: the versioned, human-readable model artifact, and the arithmetic that
turns a feature vector into a score, a band, a probability of a bad outcome, the
coverage and up to four reasons.

Pure Python and numpy: no gRPC, no SQL. One subject is scored in pure Python
(``Scorecard.score_one``: a few microseconds for 20 features), many at once in numpy
(``Scorecard.score_batch``); both give the same scores.

The arithmetic
--------------

- Each model feature puts the subject in exactly one of its bins: a numeric bin
  (right-open ``[lo, hi)``) when the value is there, its "missing" bin when it is not
  (``None`` or NaN: "no data", never imputed). Each bin carries points.
- ``raw = intercept_points + sum of the points of the subject's bins``.
- ``score = clamp(round_half_up(raw), 350, 950)``. The scaling is
  ``score = offset + factor * ln(good:bad odds)`` with ``factor = pdo / ln 2``: every
  ``pdo`` points double the good:bad odds.
- ``probability_of_bad = 1 / (1 + exp((raw - offset) / factor))``, from the
  *unclamped, unrounded* ``raw``, so that the clamp does not flatten it.
- ``coverage`` = share of the model's features that had a value. Below
  ``min_coverage`` the state is INSUFFICIENT_DATA: no score, band UNSPECIFIED, no
  probability, no reasons (never a low score instead).
- Bands (DESIGN.md section 5): 350-549 POOR, 550-599 FAIR, 600-649 GOOD,
  650-699 VERY_GOOD, 700-950 EXCELLENT.
- Reasons: for each feature with a non-zero coefficient, points lost = (the most
  points any of its bins gives, the missing bin included) - (the points of the
  subject's bin). Features that lost more than nothing, most points lost first, ties
  in catalog order, at most four; code and text come from the feature catalog
  (for the missing bin its no-data code `<CODE>_NO_DATA` and text).

The artifact (JSON, ``"format": "creditscore.scorecard/1"``)
------------------------------------------------------------

Files are named ``scorecard-<version>.json``. Keys (``?`` marks optional ones)::

    {
      "format": "creditscore.scorecard/1",
      "version": "1.0.0",               # 1-64 of [A-Za-z0-9._-], starting alphanumeric
      "description": "what it was trained on (data, size, seed) and how",
      "train_time": "2026-11-01T12:00:00Z",       # ISO 8601 with a zone
      "scaling": {
        "pdo": 40.0,                    # points that double the good:bad odds
        "factor": 57.7078,              # pdo / ln 2
        "offset": 600.0,                # the score at good:bad odds of 1:1
        "clamp": [350, 950],
        "anchors"?: {...}               # how the trainer chose factor and offset
      },
      "min_coverage": 0.25,             # 0-1
      "intercept_points"?: 0.0,         # points every subject gets (default 0)
      "features": [                     # catalog features, each at most once
        {
          "name": "pay_ontime_ratio_12m",
          "coefficient": -0.93,         # logistic coefficient on WoE; 0 = not used
          "iv"?: 0.41,                  # information value on the training sample
          "bins": [                     # contiguous, increasing; null = -inf / +inf
            {"lo": null, "hi": 0.85, "count": 812, "bad_rate": 0.31, "woe": -1.2, "points": 12.5},
            {"lo": 0.85, "hi": null, "count": 9100, "bad_rate": 0.04, "woe": 0.9, "points": 41.0}
          ],
          "missing": {"count": 90, "bad_rate": 0.12, "woe": 0.05, "points": 30.1}
        }
      ],
      "dropped"?: [{"name": ..., "reason": ..., "iv"?: ...}],   # what the trainer left out, why
      "metrics": {                      # on the holdout sample
        "auc": 0.78, "ks": 0.42, "gini": 0.56, "n_train": 14000, "n_holdout": 6000,
        "bad_rate": 0.11, "bad_rate_by_band": [{"band": "POOR", "lo": 350, "hi": 549,
        "n": 700, "bad_rate": 0.35}, ...], ...
      },
      "training_distribution"?: {       # the training population, for PSI
        "score": {"edges": [350, 375, ..., 950], "shares": [...], "insufficient_share": 0.02},
        "features": {"pay_ontime_ratio_12m": {"bins": [0.08, 0.92], "missing": 0.0}, ...}
      }
    }

Only ``lo``, ``hi`` and ``points`` (and the missing bin's ``points``) take part in
scoring; ``count``, ``bad_rate`` (null for an empty bin) and ``woe`` are the training
statistics that explain them. Score histogram bins are ``[lo, hi)`` except the last,
which includes 950.
"""

from __future__ import annotations

import enum
import json
import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from creditscore.catalog import CATALOG, FEATURE_NAMES

__all__ = [
    "ARTIFACT_FORMAT",
    "BANDS",
    "MAX_REASONS",
    "SCORE_MAX",
    "SCORE_MIN",
    "Band",
    "Reason",
    "ScoreResult",
    "ScoreState",
    "Scaling",
    "Scorecard",
    "ScorecardError",
    "UnknownFeatureError",
    "band_for",
    "is_valid_version",
    "version_key",
]

ARTIFACT_FORMAT = "creditscore.scorecard/1"
SCORE_MIN = 350
SCORE_MAX = 950
MAX_REASONS = 4

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CATALOG_ORDER = {f.name: i for i, f in enumerate(CATALOG)}
_CATALOG_BY_NAME = {f.name: f for f in CATALOG}


class ScorecardError(ValueError):
    """An artifact that is not a valid scorecard; the message says what is wrong."""


class UnknownFeatureError(ValueError):
    """Feature names that are not in the catalog were given to a scorecard."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"unknown feature(s): {', '.join(names)}")
        self.names = tuple(names)


class ScoreState(enum.Enum):
    SCORED = "SCORED"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Band(enum.Enum):
    UNSPECIFIED = "UNSPECIFIED"
    POOR = "POOR"
    FAIR = "FAIR"
    GOOD = "GOOD"
    VERY_GOOD = "VERY_GOOD"
    EXCELLENT = "EXCELLENT"


# (band, lowest score, highest score), lowest band first.
BANDS: tuple[tuple[Band, int, int], ...] = (
    (Band.POOR, 350, 549),
    (Band.FAIR, 550, 599),
    (Band.GOOD, 600, 649),
    (Band.VERY_GOOD, 650, 699),
    (Band.EXCELLENT, 700, 950),
)


def band_for(score: int) -> Band:
    """The band of a (clamped) score."""
    if score < 550:
        return Band.POOR
    if score < 600:
        return Band.FAIR
    if score < 650:
        return Band.GOOD
    if score < 700:
        return Band.VERY_GOOD
    return Band.EXCELLENT


def is_valid_version(version: str) -> bool:
    """Whether ``version`` may name a scorecard (it becomes part of a file name)."""
    return bool(_VERSION_RE.match(version))


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key that orders versions naturally: ``1.10.0`` after ``1.9.0``
    (runs of digits compare as numbers, other runs as text)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", version)
    )


class Reason(NamedTuple):
    """One reason a score is not higher."""

    code: str
    text: str
    points_lost: float
    feature: str


class ScoreResult(NamedTuple):
    """What a scorecard says about one feature vector. ``score`` and
    ``probability_of_bad`` are None when the state is INSUFFICIENT_DATA."""

    state: ScoreState
    score: int | None
    band: Band
    probability_of_bad: float | None
    coverage: float
    reasons: tuple[Reason, ...]
    model_version: str


class Scaling(NamedTuple):
    """``score = offset + factor * ln(good:bad odds)``, ``factor = pdo / ln 2``."""

    pdo: float
    factor: float
    offset: float
    clamp_low: int = SCORE_MIN
    clamp_high: int = SCORE_MAX

    @classmethod
    def from_pdo(cls, pdo: float, offset: float) -> Scaling:
        return cls(pdo=pdo, factor=pdo / math.log(2), offset=offset)

    def score_for_log_odds(self, log_odds_good: float) -> float:
        """The unclamped score of ``ln(good:bad odds)``."""
        return self.offset + self.factor * log_odds_good

    def log_odds_good(self, raw_score: float) -> float:
        """``ln(good:bad odds)`` implied by an unclamped score."""
        return (raw_score - self.offset) / self.factor

    def probability_of_bad(self, raw_score: float) -> float:
        """``1 / (1 + exp((raw - offset) / factor))``, computed without overflow."""
        z = (raw_score - self.offset) / self.factor
        if z >= 0:
            e = math.exp(-z)
            return e / (1.0 + e)
        return 1.0 / (1.0 + math.exp(z))

    def clamp(self, raw_score: float) -> int:
        """Rounded half up, then clamped to the scaling's range."""
        return min(self.clamp_high, max(self.clamp_low, math.floor(raw_score + 0.5)))


def _probability_of_bad_np(raw: np.ndarray, scaling: Scaling) -> np.ndarray:
    z = (raw - scaling.offset) / scaling.factor
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, e / (1.0 + e), 1.0 / (1.0 + e))


# ---------------------------------------------------------------- validation


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScorecardError(message)


def _number(value: Any, where: str) -> float:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        f"{where} must be a finite number, not {value!r}",
    )
    return float(value)


def _edge(value: Any, where: str, infinity: float) -> float:
    return infinity if value is None else _number(value, where)


class _CompiledFeature(NamedTuple):
    """One feature, prepared for fast lookups."""

    name: str
    edges: list[float]  # inner edges: bin i is [edges[i-1], edges[i])
    points: list[float]  # per numeric bin, then the missing bin last
    lost: list[float]  # points lost per bin (same layout)
    missing_index: int
    reason_code: str
    reason_text: str
    missing_reason_code: str
    missing_reason_text: str
    catalog_index: int
    used: bool  # coefficient != 0: may give reasons


def _compile_feature(raw: Any, index: int) -> _CompiledFeature:
    where = f"features[{index}]"
    _require(isinstance(raw, dict), f"{where} must be an object")
    name = raw.get("name")
    _require(isinstance(name, str) and name in _CATALOG_BY_NAME, f"{where}.name {name!r} is not a catalog feature")
    where = f"feature {name!r}"
    coefficient = _number(raw.get("coefficient"), f"{where}: coefficient")
    bins = raw.get("bins")
    _require(isinstance(bins, list) and len(bins) >= 1, f"{where}: bins must be a non-empty list")
    edges: list[float] = []
    points: list[float] = []
    for i, b in enumerate(bins):
        _require(isinstance(b, dict), f"{where}: bins[{i}] must be an object")
        lo = _edge(b.get("lo"), f"{where}: bins[{i}].lo", -math.inf)
        hi = _edge(b.get("hi"), f"{where}: bins[{i}].hi", math.inf)
        _require(lo < hi, f"{where}: bins[{i}] is empty ([{lo}, {hi}))")
        if i == 0:
            _require(lo == -math.inf, f"{where}: the first bin must start at null (-inf)")
        else:
            _require(lo == edges[-1], f"{where}: bins[{i}].lo must equal bins[{i - 1}].hi")
        if i == len(bins) - 1:
            _require(hi == math.inf, f"{where}: the last bin must end at null (+inf)")
        else:
            edges.append(hi)
        points.append(_number(b.get("points"), f"{where}: bins[{i}].points"))
    # ``edges`` holds every bin's ``hi`` but the last: exactly the inner edges.
    missing = raw.get("missing")
    _require(isinstance(missing, dict), f"{where}: missing must be an object (the no-data bin)")
    points.append(_number(missing.get("points"), f"{where}: missing.points"))
    best = max(points)
    entry = _CATALOG_BY_NAME[name]
    return _CompiledFeature(
        name=name,
        edges=edges,
        points=points,
        lost=[best - p for p in points],
        missing_index=len(points) - 1,
        reason_code=entry.reason_code,
        reason_text=entry.reason_text,
        missing_reason_code=entry.missing_reason_code,
        missing_reason_text=entry.missing_text,
        catalog_index=_CATALOG_ORDER[name],
        used=coefficient != 0.0,
    )


def _reason_for(feature: _CompiledFeature, index: int, lost: float) -> Reason:
    """The reason a bin gives: the catalog's text, or its no-data text for the
    missing bin (a subject who never sold has no ratings, not low ones)."""
    if index == feature.missing_index:
        return Reason(feature.missing_reason_code, feature.missing_reason_text, round(lost, 4), feature.name)
    return Reason(feature.reason_code, feature.reason_text, round(lost, 4), feature.name)


def _parse_time(value: Any) -> datetime:
    _require(isinstance(value, str), f"train_time must be an ISO 8601 string, not {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScorecardError(f"train_time {value!r} is not ISO 8601") from None
    _require(parsed.tzinfo is not None, "train_time must carry a time zone")
    return parsed


# ---------------------------------------------------------------- the scorecard


class Scorecard:
    """A loaded, validated scorecard. Build with ``from_dict``, ``from_json`` or
    ``load``; the artifact it came from is kept (``artifact``) and never changed."""

    def __init__(self, artifact: Mapping[str, Any]) -> None:
        """Validates ``artifact`` (see the module docstring); ``ScorecardError``
        says what is wrong. Prefer ``from_dict``/``load``."""
        _require(isinstance(artifact, Mapping), "a scorecard artifact is a JSON object")
        _require(
            artifact.get("format") == ARTIFACT_FORMAT,
            f"format must be {ARTIFACT_FORMAT!r}, not {artifact.get('format')!r}",
        )
        version = artifact.get("version")
        _require(isinstance(version, str) and is_valid_version(version), f"version {version!r} is not valid")
        description = artifact.get("description")
        _require(isinstance(description, str) and description.strip() != "", "description must say what the model was trained on")
        self.version: str = version
        self.description: str = description
        self.train_time: datetime = _parse_time(artifact.get("train_time"))

        scaling = artifact.get("scaling")
        _require(isinstance(scaling, Mapping), "scaling must be an object")
        pdo = _number(scaling.get("pdo"), "scaling.pdo")
        factor = _number(scaling.get("factor"), "scaling.factor")
        offset = _number(scaling.get("offset"), "scaling.offset")
        _require(pdo > 0 and factor > 0, "scaling.pdo and scaling.factor must be positive")
        _require(
            math.isclose(factor, pdo / math.log(2), rel_tol=1e-6),
            f"scaling.factor {factor} must equal pdo / ln 2 = {pdo / math.log(2)}",
        )
        clamp = scaling.get("clamp")
        _require(clamp == [SCORE_MIN, SCORE_MAX], f"scaling.clamp must be [{SCORE_MIN}, {SCORE_MAX}]")
        self.scaling = Scaling(pdo=pdo, factor=factor, offset=offset)

        self.min_coverage: float = _number(artifact.get("min_coverage"), "min_coverage")
        _require(0.0 <= self.min_coverage <= 1.0, "min_coverage must be within 0-1")
        self.intercept_points: float = _number(artifact.get("intercept_points", 0.0), "intercept_points")

        features = artifact.get("features")
        _require(isinstance(features, list) and len(features) > 0, "features must be a non-empty list")
        compiled = [_compile_feature(f, i) for i, f in enumerate(features)]
        names = [c.name for c in compiled]
        _require(len(set(names)) == len(names), "a feature appears more than once")
        self._features: tuple[_CompiledFeature, ...] = tuple(compiled)
        self.features: tuple[str, ...] = tuple(names)

        metrics = artifact.get("metrics")
        _require(isinstance(metrics, Mapping), "metrics must be an object")
        for key in ("auc", "ks", "gini"):
            _number(metrics.get(key), f"metrics.{key}")
        self.metrics: Mapping[str, Any] = metrics
        self.artifact: Mapping[str, Any] = artifact

        self._known = frozenset(FEATURE_NAMES)
        self._n = len(compiled)
        # Plain tuples for score_one's loop, and per bin the reason it gives (sorted
        # by points lost, then catalog order) or None.
        self._lookup = tuple((c.name, c.edges, c.points, c.missing_index) for c in compiled)
        self._reasons = tuple(
            [
                ((-lost, c.catalog_index), _reason_for(c, index, lost))
                if c.used and lost > 0.0
                else None
                for index, lost in enumerate(c.lost)
            ]
            for c in compiled
        )
        # numpy layout for score_batch: per feature its edges and its points with
        # the missing bin's points last.
        self._np_edges = [np.asarray(c.edges, dtype=np.float64) for c in compiled]
        self._np_points = [np.asarray(c.points, dtype=np.float64) for c in compiled]

    # -- construction

    @classmethod
    def from_dict(cls, artifact: Mapping[str, Any]) -> Scorecard:
        return cls(artifact)

    @classmethod
    def from_json(cls, text: str) -> Scorecard:
        try:
            artifact = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScorecardError(f"not JSON: {exc}") from None
        return cls(artifact)

    @classmethod
    def load(cls, path: str | Path) -> Scorecard:
        """Reads and validates the artifact at ``path``; the error names the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except ScorecardError as exc:
            raise ScorecardError(f"{path.name}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the artifact."""
        copied: dict[str, Any] = json.loads(json.dumps(self.artifact))
        return copied

    def __repr__(self) -> str:
        return f"Scorecard(version={self.version!r}, features={len(self.features)})"

    # -- scoring

    def score_one(self, values: Mapping[str, float | None]) -> ScoreResult:
        """Scores one feature vector. Names absent from ``values``, ``None`` and NaN
        are "no data"; names outside the catalog raise ``UnknownFeatureError``;
        catalog features the model does not use are ignored."""
        if not self._known.issuperset(values):
            raise UnknownFeatureError(sorted(set(values) - self._known))
        get = values.get
        total = self.intercept_points
        have = 0
        chosen: list[int] = []
        for name, edges, points, missing_index in self._lookup:
            value = get(name)
            if value is None or value != value:  # None or NaN: no data
                index = missing_index
            else:
                index = bisect_right(edges, value)
                have += 1
            total += points[index]
            chosen.append(index)
        coverage = have / self._n
        if coverage < self.min_coverage:
            return ScoreResult(
                ScoreState.INSUFFICIENT_DATA, None, Band.UNSPECIFIED, None, coverage, (), self.version
            )
        # Per bin a prepared (sort key, Reason), or None where the bin loses nothing.
        candidates = [
            entry for table, index in zip(self._reasons, chosen) if (entry := table[index]) is not None
        ]
        candidates.sort()
        score = self.scaling.clamp(total)
        return ScoreResult(
            ScoreState.SCORED,
            score,
            band_for(score),
            self.scaling.probability_of_bad(total),
            coverage,
            tuple([reason for _, reason in candidates[:MAX_REASONS]]),
            self.version,
        )

    def raw_points_batch(
        self, X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES
    ) -> tuple[np.ndarray, np.ndarray]:
        """The unclamped points (float64) and the coverage (float64) of every row of
        ``X`` (n x len(feature_names); NaN = no data)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ValueError(f"X must be (n, {len(feature_names)}), not {X.shape}")
        unknown = sorted(set(feature_names) - self._known)
        if unknown:
            raise UnknownFeatureError(unknown)
        column = {name: i for i, name in enumerate(feature_names)}
        n = X.shape[0]
        total = np.full(n, self.intercept_points, dtype=np.float64)
        have = np.zeros(n, dtype=np.int64)
        for feature, edges, points in zip(self._features, self._np_edges, self._np_points):
            j = column.get(feature.name)
            if j is None:  # the column is absent: no data for everyone
                total += points[feature.missing_index]
                continue
            values = X[:, j]
            missing = np.isnan(values)
            index = np.searchsorted(edges, values, side="right")
            index[missing] = feature.missing_index
            total += points[index]
            have += ~missing
        return total, have / self._n

    def score_batch(
        self, X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scores every row of ``X`` (n x len(feature_names), columns named by
        ``feature_names``, catalog order by default; NaN = no data).

        Returns ``(scores int32, probability_of_bad float64, coverage float64,
        insufficient bool)``; rows with too little data have score 0 and
        probability NaN."""
        total, coverage = self.raw_points_batch(X, feature_names)
        insufficient = coverage < self.min_coverage
        scaling = self.scaling
        scores = np.clip(np.floor(total + 0.5), scaling.clamp_low, scaling.clamp_high).astype(np.int32)
        pd = _probability_of_bad_np(total, scaling)
        scores[insufficient] = 0
        pd[insufficient] = np.nan
        return scores, pd, coverage, insufficient
