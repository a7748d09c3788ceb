"""Scorecards: the versioned, human-readable model artifact, and the arithmetic that
turns a feature vector into a score, a band, a probability of a bad outcome, the
coverage, up to four reasons and up to three ways to improve.

Pure Python and numpy: no gRPC, no SQL. One subject is scored in pure Python
(``Scorecard.score_one``: a few microseconds for 20 features), many at once in numpy
(``Scorecard.score_batch`` for a numeric matrix, ``Scorecard.score_columns`` for
named columns, categorical ones included, with reasons as integer indices into
``Scorecard.reason_table``, turned into strings only when asked); all give the
same scores and the same reasons. Everything a score needs per bin (points, the
rank of its points lost among all bins, its way to improve) is worked out once,
when the artifact is loaded.

The arithmetic
--------------

- Each model feature puts the subject in exactly one of its bins (layout: regular
  bins, special bins, the missing bin):

  * numeric: a special bin when the value is one of the feature's special codes
    (e.g. -999), else the right-open regular bin ``[lo, hi)`` holding it;
  * categorical: the regular bin listing the category; a category never seen in
    training goes to the bin marked ``"other": true`` (rare categories pooled in
    training) when there is one, else to the missing bin;
  * the missing bin ("no data", never imputed) for ``None``, NaN, an empty string,
    and a special code pooled with it (``missing.special_values``).

  Each bin carries points.
- ``raw = intercept_points + sum of the points of the subject's bins``.
- ``score = clamp(round_half_up(raw), 350, 950)``. The scaling is
  ``score = offset + factor * ln(good:bad odds)`` with ``factor = pdo / ln 2``: every
  ``pdo`` points double the good:bad odds.
- ``probability_of_bad = 1 / (1 + exp((raw - offset) / factor))``, from the
  *unclamped, unrounded* ``raw``, so that the clamp does not flatten it.
- ``coverage`` = share of the model's features whose subject is not in the missing
  bin. Below ``min_coverage`` the state is INSUFFICIENT_DATA: no score, band
  UNSPECIFIED, no probability, no reasons, no improvements (never a low score).
- Bands (DESIGN.md section 5): 350-549 POOR, 550-599 FAIR, 600-649 GOOD,
  650-699 VERY_GOOD, 700-950 EXCELLENT.
- Reasons: for each feature with a non-zero coefficient, points lost = (the most
  points any of its bins gives, special and missing bins included) - (the points of
  the subject's bin). Features that lost more than nothing, most points lost first,
  ties in catalog order (features outside the catalog after catalog ones, in
  artifact order), at most four; the feature's reason code and text, or for the
  missing bin its no-data code and text.
- How to improve: for *actionable* numeric features with a direction (+1 higher is
  better, -1 lower is better) whose subject is in a regular bin, the nearest regular
  bin in the improving direction that gives more points: the edge to reach
  (``target_value``: at least its ``lo`` when higher is better, below its ``hi``
  when lower is better; for whole-number features the nearest whole number inside
  the bin), the points it gains, and the feature's hint with that target ("Pay every
  bill by its due date (on-time share at least 0.95)"). At most three, most points
  first, ties in reason order. The missing bin, special bins and categorical
  features give none (there is no value to move along).

The artifact (JSON)
-------------------

Files are named ``scorecard-<version>.json``. Format 2 (``"format":
"creditscore.scorecard/2"``, written by the trainer) is self-contained: each feature
carries its kind, bins, statistics, points and texts, so a model trained on an
analyst's CSV needs no catalog; format 1 files (catalog features, numeric bins,
texts from the catalog) still load and score as before. Keys (``?`` optional)::

    {
      "format": "creditscore.scorecard/2",
      "version": "2.0.0",               # 1-64 of [A-Za-z0-9._-], starting alphanumeric
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
      "features": [                     # each name at most once
        {
          "name": "pay_ontime_ratio_12m",   # format 1: a catalog feature
          "kind": "numeric",                # format 2: "numeric" | "categorical"
          "direction"?: 1,                  # +1 higher is better, -1 lower, 0 unknown
          "value_type"?: "real",            # numeric: "binary" | "integer" | "real"
          "label"?: "on-time share",        # short name for texts
          "reason_code": "PAY_ONTIME_RATIO_12M", "reason_text": "...",   # format 2
          "missing_reason_code": "PAY_ONTIME_RATIO_12M_NO_DATA", "missing_text": "...",
          "actionable"?: true, "improve_hint"?: "Pay every bill by its due date",
          "coefficient": -0.93,         # logistic coefficient on WoE; 0 = not used
          "iv"?: 0.41,                  # information value on the training sample
          "bins": [                     # numeric: contiguous, increasing; null = -inf / +inf
            {"lo": null, "hi": 0.85, "count": 812, "bads": 252, "bad_rate": 0.31,
             "woe": -1.2, "iv": 0.2, "points": 12.5},
            {"lo": 0.85, "hi": null, ..., "points": 41.0}
          ],
          #  categorical bins: {"categories": ["rent", "other"], "other"?: true, ..., "points": 3.1}
          "special"?: [{"value": -999, "count": 50, ..., "points": 20.0}],   # numeric
          "missing": {"count": 90, "bad_rate": 0.12, "woe": 0.05, "points": 30.1,
                      "special_values"?: [-1]}   # special codes too rare for a bin
        }
      ],
      "dropped"?: [{"name": ..., "reason": ..., "iv"?: ...}],   # what the trainer left out, why
      "metrics": {                      # on the holdout sample
        "auc": 0.78, "ks": 0.42, "gini": 0.56, ...   # see training.py
      },
      "training"?: {...},               # the trainer's settings
      "training_distribution"?: {       # the training population, for PSI
        "score": {"edges": [350, 375, ..., 950], "shares": [...], "insufficient_share": 0.02},
        "features": {"pay_ontime_ratio_12m": {"bins": [0.08, 0.92], "special"?: [...], "missing": 0.0}, ...}
      }
    }

Only the bin definitions (``lo``/``hi``, ``categories``/``other``, special
``value``\\s, ``missing.special_values``) and ``points`` take part in scoring; the
counts, ``bad_rate`` (null for an empty bin), ``woe`` and ``iv`` are the training
statistics that explain them. Score histogram bins are ``[lo, hi)`` except the last,
which includes 950.
"""

from __future__ import annotations

import enum
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import CATALOG, FEATURE_NAMES

from .binning import CATALOG_LABELS, CATEGORICAL, NUMERIC, categorical_keys, regular_bins

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_FORMATS",
    "ARTIFACT_FORMAT_V1",
    "BANDS",
    "MAX_IMPROVEMENTS",
    "MAX_REASONS",
    "SCORE_MAX",
    "SCORE_MIN",
    "Band",
    "BatchScores",
    "FeatureValueError",
    "Improvement",
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

ARTIFACT_FORMAT = "creditscore.scorecard/2"
ARTIFACT_FORMAT_V1 = "creditscore.scorecard/1"
ARTIFACT_FORMATS = (ARTIFACT_FORMAT_V1, ARTIFACT_FORMAT)
SCORE_MIN = 350
SCORE_MAX = 950
MAX_REASONS = 4
MAX_IMPROVEMENTS = 3
MAX_FEATURE_NAME = 200

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_CATALOG_ORDER = {f.name: i for i, f in enumerate(CATALOG)}
_CATALOG_BY_NAME = {f.name: f for f in CATALOG}
_VALUE_TYPES = ("binary", "integer", "real")

Floats = npt.NDArray[np.float64]


class ScorecardError(ValueError):
    """An artifact that is not a valid scorecard; the message says what is wrong."""


class UnknownFeatureError(ValueError):
    """Feature names that are neither catalog features nor the model's own were
    given to a scorecard."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"unknown feature(s): {', '.join(names)}")
        self.names = tuple(names)


class FeatureValueError(ValueError):
    """A value a feature cannot take (text for a numeric feature that is not a
    number, a categorical feature in a numeric matrix); names the feature."""

    def __init__(self, feature: str, message: str) -> None:
        super().__init__(f"feature {feature!r}: {message}")
        self.feature = feature


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


class Improvement(NamedTuple):
    """A change to one actionable feature that would lift the score: reach
    ``target_value`` (at least it when higher is better, below it when lower is
    better; see the module docstring) to gain about ``points_gain`` points. (A
    named tuple, like ``Reason``: three are built per score, and a tuple is built
    three times faster than a frozen dataclass.)"""

    feature: str
    code: str
    text: str
    current_value: float | None
    target_value: float | None
    points_gain: float


class ScoreResult(NamedTuple):
    """What a scorecard says about one feature vector. ``score`` and
    ``probability_of_bad`` are None, ``reasons`` and ``improvements`` empty, when
    the state is INSUFFICIENT_DATA."""

    state: ScoreState
    score: int | None
    band: Band
    probability_of_bad: float | None
    coverage: float
    reasons: tuple[Reason, ...]
    model_version: str
    improvements: tuple[Improvement, ...] = ()


class BatchScores(NamedTuple):
    """Many subjects at once. ``scores`` int32 (0 where insufficient),
    ``pd`` float64 (NaN where insufficient), ``coverage`` float64, ``insufficient``
    bool; ``reasons`` (when asked for, else None) an ``(n, MAX_REASONS)`` integer
    array per row of up to four reasons as indices into ``reason_table`` (the
    codes), ranked as ``score_one`` ranks them, padded with -1 (all -1 where
    insufficient). ``reason_codes()`` turns them into code strings, only when
    asked: numbers are what the batch path makes fast."""

    scores: np.ndarray
    pd: np.ndarray
    coverage: np.ndarray
    insufficient: np.ndarray
    reasons: np.ndarray | None = None
    reason_table: tuple[str, ...] = ()

    def reason_codes(self) -> list[tuple[str, ...]] | None:
        """One tuple of up to four reason codes per row (empty where insufficient
        or nothing was lost); None when reasons were not asked for."""
        if self.reasons is None:
            return None
        table = np.array([*self.reason_table, ""], dtype=object)  # -1 -> ""
        counts = (self.reasons >= 0).sum(axis=1).tolist()
        return [tuple(row[:c]) for row, c in zip(table[self.reasons].tolist(), counts, strict=True)]

    def reason_codes_of(self, row: int) -> tuple[str, ...]:
        """The reason codes of one row (empty without reasons)."""
        if self.reasons is None:
            return ()
        return tuple(self.reason_table[i] for i in self.reasons[row].tolist() if i >= 0)


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


def _mapping(value: Any, message: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScorecardError(message)
    return value


def _number(value: Any, where: str) -> float:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        f"{where} must be a finite number, not {value!r}",
    )
    return float(value)


def _edge(value: Any, where: str, infinity: float) -> float:
    return infinity if value is None else _number(value, where)


def _text(value: Any, where: str) -> str:
    _require(isinstance(value, str) and value.strip() != "", f"{where} must be a non-empty string")
    return str(value)


def _code(value: Any, where: str) -> str:
    _require(
        isinstance(value, str) and bool(_CODE_RE.match(value)), f"{where} must be an UPPER_SNAKE code, not {value!r}"
    )
    return str(value)


def _format_number(value: float) -> str:
    """``0.95``, ``5``, ``1250.5``: short, no trailing zeros."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _category_key(value: Any) -> str:
    """A categorical value as the text training saw: str as is, whole numbers
    without a decimal point (3.0 -> "3"), other numbers in short form."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return _format_number(float(value))
    return str(value)


_MISSING_TEXT = frozenset({"", "na", "nan", "null"})


def _parse_number(feature: str, value: str) -> float | None:
    """A numeric feature's value given as text: missing markers ("", NA, NaN,
    null, any case) are None; anything else must be a finite number."""
    text = value.strip()
    if text.lower() in _MISSING_TEXT:
        return None
    try:
        number = float(text)
    except ValueError:
        raise FeatureValueError(feature, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise FeatureValueError(feature, f"{value!r} is not a finite number")
    return number


@dataclass(slots=True, eq=False)
class _Feature:
    """One feature, compiled for fast lookups. Bin layout: regular, special, missing."""

    name: str
    kind: str
    direction: int
    value_type: str
    label: str
    reason_code: str
    reason_text: str
    missing_reason_code: str
    missing_text: str
    actionable: bool
    improve_hint: str
    used: bool
    tie_rank: int
    edges: list[float]  # numeric: the inner edges
    lo: list[float]  # numeric: per regular bin its lower and upper edge
    hi: list[float]
    specials: dict[float, int]  # special value -> its bin (a pooled one: the missing bin)
    categories: dict[str, int]  # categorical: category -> its bin
    unseen_index: int  # the bin of a category never seen in training
    points: list[float]
    points_np: Floats
    lost: list[float]  # per bin the points lost against the best bin (0 when not used)
    missing_index: int
    n_regular: int
    fast: bool  # score_one's inline path: numeric without specials, bisect only
    improvements: list[_Offer | None] = field(default_factory=list)
    reason_keys: list[int] = field(default_factory=list)
    reason_keys_np: npt.NDArray[np.signedinteger[Any]] = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    offer_keys: list[int | None] = field(default_factory=list)

    def locate(self, value: Any) -> int:
        """The bin of one value (``score_one``'s slow path: text, categories,
        special codes)."""
        if value is None:
            return self.missing_index
        if self.kind == NUMERIC:
            if isinstance(value, str):
                parsed = _parse_number(self.name, value)
                if parsed is None:
                    return self.missing_index
                value = parsed
            if value != value:
                return self.missing_index
            special = self.specials.get(value) if self.specials else None
            if special is not None:
                return int(special)
            return bisect_right(self.edges, value)
        if isinstance(value, float) and value != value:
            return self.missing_index
        key = _category_key(value)
        if key == "":
            return self.missing_index
        return int(self.categories.get(key, self.unseen_index))

    def locate_np(self, column: Any) -> npt.NDArray[np.intp]:
        """The bin (intp) of every value of a column."""
        if self.kind == NUMERIC:
            try:
                x = np.asarray(column, dtype=np.float64)
            except (TypeError, ValueError):
                raise FeatureValueError(self.name, "numeric values expected (NaN for no data)") from None
            if x.ndim != 1:
                raise FeatureValueError(self.name, "a column must be one-dimensional")
            index = regular_bins(x, self.edges, missing=self.missing_index)
            for value, bin_index in self.specials.items():
                index[x == value] = bin_index
            return index
        present, keys = categorical_keys(column)
        index = np.full(len(present), self.missing_index, dtype=np.intp)
        if keys.size:
            distinct, inverse = np.unique(keys, return_inverse=True)
            table = np.array([self.categories.get(str(c), self.unseen_index) for c in distinct], dtype=np.intp)
            index[present] = table[inverse]
        return index


def _bin_points(raw: Any, where: str) -> float:
    return _number(_mapping(raw, f"{where} must be an object").get("points"), f"{where}.points")


class _Meaning(NamedTuple):
    """What a feature is, besides its bins: kind, trend, texts."""

    kind: str
    direction: int
    reason_code: str
    reason_text: str
    missing_reason_code: str
    missing_text: str
    actionable: bool
    improve_hint: str
    label: str
    value_type: str


def _catalog_meaning(name: str) -> _Meaning:
    """Format 1: a catalog feature, numeric, its texts from the catalog."""
    catalog = _CATALOG_BY_NAME[name]
    label, value_type = CATALOG_LABELS.get(name, (name, "real"))
    return _Meaning(
        NUMERIC, catalog.direction, catalog.reason_code, catalog.reason_text, catalog.missing_reason_code,
        catalog.missing_text, catalog.actionable, catalog.improve_hint, label, value_type,
    )


def _own_meaning(raw: Mapping[str, Any], name: str, where: str) -> _Meaning:
    """Format 2: the feature's kind, direction and texts, written in the artifact."""
    kind = raw.get("kind")
    _require(kind in (NUMERIC, CATEGORICAL), f"{where}: kind must be {NUMERIC!r} or {CATEGORICAL!r}")
    direction = raw.get("direction", 0)
    if not (isinstance(direction, int) and not isinstance(direction, bool) and direction in (-1, 0, 1)):
        raise ScorecardError(f"{where}: direction must be -1, 0 or 1")
    reason_code = _code(raw.get("reason_code"), f"{where}: reason_code")
    reason_text = _text(raw.get("reason_text"), f"{where}: reason_text")
    missing_code = _code(raw.get("missing_reason_code"), f"{where}: missing_reason_code")
    missing_text = _text(raw.get("missing_text"), f"{where}: missing_text")
    actionable = raw.get("actionable", False)
    if not isinstance(actionable, bool):
        raise ScorecardError(f"{where}: actionable must be true or false")
    hint = raw.get("improve_hint", "")
    if not isinstance(hint, str):
        raise ScorecardError(f"{where}: improve_hint must be a string")
    label = raw.get("label", name)
    if not (isinstance(label, str) and label.strip() != ""):
        raise ScorecardError(f"{where}: label must be a non-empty string")
    value_type = raw.get("value_type", "real")
    _require(value_type in _VALUE_TYPES, f"{where}: value_type must be one of {_VALUE_TYPES}")
    return _Meaning(
        NUMERIC if kind == NUMERIC else CATEGORICAL, direction, reason_code, reason_text, missing_code,
        missing_text, actionable, hint, label, str(value_type),
    )


class _Regular(NamedTuple):
    """The regular bins: their points, and how a value finds its bin."""

    points: list[float]
    edges: list[float]
    lo: list[float]
    hi: list[float]
    categories: dict[str, int]
    other: int | None


def _numeric_bins(bins: list[Any], where: str) -> _Regular:
    points: list[float] = []
    edges: list[float] = []
    los: list[float] = []
    his: list[float] = []
    for i, raw in enumerate(bins):
        b = _mapping(raw, f"{where}: bins[{i}] must be an object")
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
        los.append(lo)
        his.append(hi)
        points.append(_bin_points(b, f"{where}: bins[{i}]"))
    return _Regular(points, edges, los, his, {}, None)


def _categorical_bins(bins: list[Any], where: str) -> _Regular:
    points: list[float] = []
    categories: dict[str, int] = {}
    other: int | None = None
    for i, raw in enumerate(bins):
        b = _mapping(raw, f"{where}: bins[{i}] must be an object")
        listed = b.get("categories")
        if not (isinstance(listed, list) and all(isinstance(c, str) and c != "" for c in listed)):
            raise ScorecardError(f"{where}: bins[{i}].categories must be a list of non-empty strings")
        for c in listed:
            _require(c not in categories, f"{where}: category {c!r} is in more than one bin")
            categories[c] = i
        if b.get("other", False):
            _require(other is None, f"{where}: only one bin may be marked other")
            other = i
        points.append(_bin_points(b, f"{where}: bins[{i}]"))
    return _Regular(points, [], [], [], categories, other)


def _special_bins(raw: Mapping[str, Any], kind: str, fmt: str, where: str, points: list[float]) -> dict[float, int]:
    """The special bins (their points appended to ``points``): value -> bin."""
    specials: dict[float, int] = {}
    special_bins = raw.get("special", [])
    _require(fmt != ARTIFACT_FORMAT_V1 or not special_bins, f"{where}: special bins need format {ARTIFACT_FORMAT!r}")
    if not isinstance(special_bins, list):
        raise ScorecardError(f"{where}: special must be a list")
    _require(kind == NUMERIC or not special_bins, f"{where}: special bins are for numeric features only")
    for i, entry in enumerate(special_bins):
        b = _mapping(entry, f"{where}: special[{i}] must be an object")
        value = _number(b.get("value"), f"{where}: special[{i}].value")
        _require(value not in specials, f"{where}: special value {value} appears twice")
        specials[value] = len(points)
        points.append(_bin_points(b, f"{where}: special[{i}]"))
    return specials


def _missing_bin(
    raw: Mapping[str, Any], kind: str, where: str, points: list[float], specials: dict[float, int]
) -> int:
    """The missing bin (its points appended to ``points``, the special values
    pooled with it added to ``specials``): its index."""
    missing = _mapping(raw.get("missing"), f"{where}: missing must be an object (the no-data bin)")
    missing_index = len(points)
    points.append(_number(missing.get("points"), f"{where}: missing.points"))
    pooled = missing.get("special_values", [])
    if not isinstance(pooled, list):
        raise ScorecardError(f"{where}: missing.special_values must be a list")
    _require(kind == NUMERIC or not pooled, f"{where}: special values are for numeric features only")
    for i, v in enumerate(pooled):
        value = _number(v, f"{where}: missing.special_values[{i}]")
        _require(value not in specials, f"{where}: special value {value} appears twice")
        specials[value] = missing_index
    return missing_index


def _feature_name(raw: Mapping[str, Any], fmt: str, where: str) -> str:
    name = raw.get("name")
    if fmt == ARTIFACT_FORMAT_V1:
        if not (isinstance(name, str) and name in _CATALOG_BY_NAME):
            raise ScorecardError(f"{where}.name {name!r} is not a catalog feature")
    elif not (isinstance(name, str) and name.strip() != "" and len(name) <= MAX_FEATURE_NAME):
        raise ScorecardError(f"{where}.name must be a non-empty string of at most {MAX_FEATURE_NAME} characters")
    return name


def _compile_feature(raw: Any, index: int, fmt: str) -> _Feature:
    entry = _mapping(raw, f"features[{index}] must be an object")
    name = _feature_name(entry, fmt, f"features[{index}]")
    where = f"feature {name!r}"
    coefficient = _number(entry.get("coefficient"), f"{where}: coefficient")
    meaning = _catalog_meaning(name) if fmt == ARTIFACT_FORMAT_V1 else _own_meaning(entry, name, where)
    bins = entry.get("bins")
    if not (isinstance(bins, list) and len(bins) >= 1):
        raise ScorecardError(f"{where}: bins must be a non-empty list")
    regular = _numeric_bins(bins, where) if meaning.kind == NUMERIC else _categorical_bins(bins, where)
    points = list(regular.points)
    specials = _special_bins(entry, meaning.kind, fmt, where, points)
    missing_index = _missing_bin(entry, meaning.kind, where, points, specials)
    best = max(points)
    used = coefficient != 0.0
    feature = _Feature(
        name=name, kind=meaning.kind, direction=meaning.direction, value_type=meaning.value_type,
        label=meaning.label, reason_code=meaning.reason_code, reason_text=meaning.reason_text,
        missing_reason_code=meaning.missing_reason_code, missing_text=meaning.missing_text,
        actionable=meaning.actionable, improve_hint=meaning.improve_hint, used=used,
        tie_rank=_CATALOG_ORDER.get(name, len(_CATALOG_ORDER) + index),
        edges=regular.edges, lo=regular.lo, hi=regular.hi, specials=specials, categories=regular.categories,
        unseen_index=regular.other if regular.other is not None else missing_index,
        points=points, points_np=np.asarray(points, dtype=np.float64),
        lost=[best - p if used else 0.0 for p in points],
        missing_index=missing_index, n_regular=len(regular.points),
        fast=meaning.kind == NUMERIC and not specials,
    )
    feature.improvements = _improvements_of(feature)
    return feature


_Offer = tuple[tuple[float, int], str, str, str, float, float]


def _improvements_of(f: _Feature) -> list[_Offer | None]:
    """Per bin: ``((-gain, tie rank), name, code, text, target value, gain)`` of the
    nearest regular bin in the improving direction with more points, or None."""
    out: list[_Offer | None] = [None] * len(f.points)
    if not (f.actionable and f.used and f.kind == NUMERIC and f.direction in (-1, 1)):
        return out
    whole = f.value_type in ("binary", "integer")
    for i in range(f.n_regular):
        step = f.direction
        j = i + step
        while 0 <= j < f.n_regular and f.points[j] <= f.points[i]:
            j += step
        if not 0 <= j < f.n_regular:
            continue
        gain = f.points[j] - f.points[i]
        if f.direction > 0:
            target = float(math.ceil(f.lo[j])) if whole else f.lo[j]
            goal = f"{f.label} at least {_format_number(target)}"
        else:
            target = float(math.ceil(f.hi[j]) - 1) if whole else f.hi[j]
            bound = "at most" if whole else "below"
            goal = f"{f.label} {bound} {_format_number(target)}"
        if f.value_type == "binary":
            text = f.improve_hint or f"Change {f.label} to {_format_number(target)}"
        elif f.improve_hint:
            text = f"{f.improve_hint} ({goal})"
        else:
            text = f"Bring {goal}"
        out[i] = ((-gain, f.tie_rank), f.name, f.reason_code, text, target, gain)
    return out


def _scaling_of(raw: Any) -> Scaling:
    scaling = _mapping(raw, "scaling must be an object")
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
    return Scaling(pdo=pdo, factor=factor, offset=offset)


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
        artifact = _mapping(artifact, "a scorecard artifact is a JSON object")
        fmt = artifact.get("format")
        _require(fmt in ARTIFACT_FORMATS, f"format must be one of {list(ARTIFACT_FORMATS)}, not {fmt!r}")
        self.format: str = str(fmt)
        version = artifact.get("version")
        if not (isinstance(version, str) and is_valid_version(version)):
            raise ScorecardError(f"version {version!r} is not valid")
        description = artifact.get("description")
        if not (isinstance(description, str) and description.strip() != ""):
            raise ScorecardError("description must say what the model was trained on")
        self.version: str = version
        self.description: str = description
        self.train_time: datetime = _parse_time(artifact.get("train_time"))
        self.scaling = _scaling_of(artifact.get("scaling"))

        self.min_coverage: float = _number(artifact.get("min_coverage"), "min_coverage")
        _require(0.0 <= self.min_coverage <= 1.0, "min_coverage must be within 0-1")
        self.intercept_points: float = _number(artifact.get("intercept_points", 0.0), "intercept_points")

        features = artifact.get("features")
        if not (isinstance(features, list) and len(features) > 0):
            raise ScorecardError("features must be a non-empty list")
        compiled = [_compile_feature(f, i, self.format) for i, f in enumerate(features)]
        names = [c.name for c in compiled]
        _require(len(set(names)) == len(names), "a feature appears more than once")
        self._features: tuple[_Feature, ...] = tuple(compiled)
        self.features: tuple[str, ...] = tuple(names)
        self.kinds: Mapping[str, str] = {c.name: c.kind for c in compiled}

        metrics = _mapping(artifact.get("metrics"), "metrics must be an object")
        for key in ("auc", "ks", "gini"):
            _number(metrics.get(key), f"metrics.{key}")
        self.metrics: Mapping[str, Any] = metrics
        self.artifact: Mapping[str, Any] = artifact

        self._known = frozenset(FEATURE_NAMES) | frozenset(names)
        self._n = len(compiled)
        self._rank_reasons_and_offers(compiled)
        # Plain tuples for score_one's loop: per feature, per bin (points, reason
        # rank key, offer key or None), all worked out here once.
        self._lookup = tuple(
            (c.name, c.fast, c.edges, c.missing_index, _bin_slots(c), c) for c in compiled
        )

    def _rank_reasons_and_offers(self, compiled: Sequence[_Feature]) -> None:
        """Ranks, once, every (feature, bin) that loses points the way reasons are
        ranked (most points lost first, ties in reason order: catalog order, then
        artifact order) and every way to improve (most points gained first, ties in
        reason order). A row's bins come from distinct features, so ranking its
        bins by these integer keys ranks them as comparing the losses would:
        ``score_one`` sorts a few integers and the batch path keeps the four
        smallest keys per row with vectorised min/max."""
        losing = sorted(
            (-f.lost[b], f.tie_rank, b, k)
            for k, f in enumerate(compiled)
            for b in range(len(f.points))
            if f.lost[b] > 0.0
        )
        self._no_reason = len(losing)  # the key of a bin that loses nothing: after every real one
        key_dtype = np.int16 if len(losing) < np.iinfo(np.int16).max else np.int32
        codes: dict[str, int] = {}
        for f in compiled:
            f.reason_keys = [self._no_reason] * len(f.points)
            for code in (f.reason_code, f.missing_reason_code):
                codes.setdefault(code, len(codes))
        self.reason_table: tuple[str, ...] = tuple(codes)
        self._reason_by_key: list[Reason] = []
        key_code = np.full(len(losing) + 1, -1, dtype=np.int16 if len(codes) < 2**15 else np.int32)
        for key, (minus_lost, _, b, k) in enumerate(losing):
            f = compiled[k]
            f.reason_keys[b] = key
            missing = b == f.missing_index
            code, text = (f.missing_reason_code, f.missing_text) if missing else (f.reason_code, f.reason_text)
            self._reason_by_key.append(Reason(code, text, round(-minus_lost, 4), f.name))
            key_code[key] = codes[code]
        self._key_code = key_code
        for f in compiled:
            f.reason_keys_np = np.asarray(f.reason_keys, dtype=key_dtype)
        self._key_dtype = key_dtype

        # (rank key, bin, feature) is unique: the offer itself is never compared.
        offers = sorted(
            (offer[0], b, k, offer)
            for k, f in enumerate(compiled)
            for b, offer in enumerate(f.improvements)
            if offer
        )
        self._offer_by_key: list[tuple[str, str, str, float, float]] = []
        for f in compiled:
            f.offer_keys = [None] * len(f.points)
        for key, (_, b, k, offer) in enumerate(offers):
            compiled[k].offer_keys[b] = key
            _, name, code, text, target, gain = offer
            self._offer_by_key.append((name, code, text, target, round(gain, 4)))

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

    # -- one subject

    def score_one(self, values: Mapping[str, Any]) -> ScoreResult:
        """Scores one feature vector: numbers (or numeric text) for numeric features,
        text for categorical ones. Names absent from ``values``, ``None``, NaN and ""
        are "no data"; names that are neither catalog features nor the model's raise
        ``UnknownFeatureError``; other features the model does not use are ignored;
        text that is not a number for a numeric feature raises ``FeatureValueError``."""
        if not self._known.issuperset(values):
            raise UnknownFeatureError(sorted(set(values) - self._known))
        get = values.get
        total = self.intercept_points
        missing = 0
        no_reason = self._no_reason
        ranked = []  # the rank keys of the subject's bins that lose points
        offers = []  # the keys of the ways to improve the subject's bins offer
        for name, fast, edges, missing_index, slots, f in self._lookup:
            value = get(name)
            if value is None:
                index = missing_index
            elif fast and type(value) is not str:
                index = missing_index if value != value else bisect_right(edges, value)
            else:
                index = f.locate(value)
            if index == missing_index:
                missing += 1
            points, key, offer = slots[index]
            total += points
            if key < no_reason:
                ranked.append(key)
            if offer is not None:
                offers.append(offer)
        coverage = (self._n - missing) / self._n
        if coverage < self.min_coverage:
            return ScoreResult(
                ScoreState.INSUFFICIENT_DATA, None, Band.UNSPECIFIED, None, coverage, (), self.version
            )
        ranked.sort()
        by_key = self._reason_by_key
        reasons = tuple([by_key[key] for key in ranked[:MAX_REASONS]])
        score = math.floor(total + 0.5)  # Scaling.clamp, inline
        score = SCORE_MIN if score < SCORE_MIN else SCORE_MAX if score > SCORE_MAX else score
        return ScoreResult(
            ScoreState.SCORED,
            score,
            band_for(score),
            self.scaling.probability_of_bad(total),
            coverage,
            reasons,
            self.version,
            self._improvements(offers, get) if offers else (),
        )

    def _improvements(self, offers: list[int], get: Callable[[str], Any]) -> tuple[Improvement, ...]:
        """The best ``MAX_IMPROVEMENTS`` offers (most points first, ties in reason
        order: their keys), each with the subject's current value."""
        offers.sort()
        out = []
        by_key = self._offer_by_key
        for key in offers[:MAX_IMPROVEMENTS]:
            name, code, text, target, gain = by_key[key]
            value = get(name)
            current = _parse_number(name, value) if isinstance(value, str) else float(value)
            out.append(Improvement(name, code, text, current, target, gain))
        return tuple(out)

    # -- many subjects

    def bin_index(self, columns: Mapping[str, Any], *, n_rows: int | None = None) -> np.ndarray:
        """The bin (intp, n x features in ``self.features`` order; layout per
        feature: regular, special, missing bins) of every row of ``columns``
        (name -> column; an absent model feature is "no data" for every row;
        names the model does not use are ignored; ``n_rows`` is needed only when
        no column is given)."""
        n = _rows_of(columns, n_rows)
        out = np.empty((n, self._n), dtype=np.intp)
        for k, f in enumerate(self._features):
            column = columns.get(f.name)
            out[:, k] = f.missing_index if column is None else _checked(f.locate_np(column), n, f.name)
        return out

    def raw_points_batch(
        self, X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES
    ) -> tuple[np.ndarray, np.ndarray]:
        """The unclamped points (float64) and the coverage (float64) of every row of
        ``X`` (n x len(feature_names); NaN = no data). Categorical model features
        cannot be in a numeric matrix (``FeatureValueError``); absent, they are
        "no data"."""
        columns = self._matrix_columns(X, feature_names)
        total, have, _ = self._accumulate(self._column_bins(columns, X.shape[0]), X.shape[0], reasons=False)
        return total, have / self._n

    def score_batch(
        self, X: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scores every row of ``X`` (n x len(feature_names), columns named by
        ``feature_names``, catalog order by default; NaN = no data).

        Returns ``(scores int32, probability_of_bad float64, coverage float64,
        insufficient bool)``; rows with too little data have score 0 and
        probability NaN."""
        X = np.asarray(X, dtype=np.float64)
        total, coverage = self.raw_points_batch(X, feature_names)
        return self._finish(total, coverage)

    def score_columns(
        self, columns: Mapping[str, Any], *, reasons: bool = True, n_rows: int | None = None
    ) -> BatchScores:
        """Scores every row of named columns: float64 (NaN = no data) for numeric
        features, str (None or "" = no data) for categorical ones. Model features
        absent from ``columns`` are "no data" for every row; other names are
        ignored (``n_rows`` is needed only when no column is given). With
        ``reasons`` each row gets up to four reasons (``BatchScores.reasons``:
        indices into ``reason_table``), ranked as ``score_one`` ranks them."""
        n = _rows_of(columns, n_rows)
        return self._score(self._column_bins(columns, n), n, reasons)

    def score_bins(self, index: np.ndarray | Sequence[np.ndarray], *, reasons: bool = False) -> BatchScores:
        """Scores rows already binned: ``bin_index``'s n x features matrix, or one
        array of bins per model feature (in ``self.features`` order)."""
        if isinstance(index, np.ndarray):
            if index.ndim != 2 or index.shape[1] != self._n:
                raise ValueError(f"index must be (n, {self._n}), not {index.shape}")
            per_feature: list[np.ndarray] = [index[:, k] for k in range(self._n)]
        else:
            per_feature = [np.asarray(bins) for bins in index]
            if len(per_feature) != self._n or len({b.shape for b in per_feature}) != 1 or per_feature[0].ndim != 1:
                raise ValueError(f"index must hold {self._n} equally long one-dimensional arrays of bins")
        n = per_feature[0].shape[0]
        for f, bins in zip(self._features, per_feature, strict=True):
            if bins.size and (int(bins.min()) < 0 or int(bins.max()) > f.missing_index):
                raise ValueError(f"feature {f.name!r}: bins must be within 0-{f.missing_index}")
        return self._score([_sliced(bins) for bins in per_feature], n, reasons)

    # The batch kernel works through the rows a block at a time, so that the
    # per-feature temporaries (bins, points, rank keys) stay in the CPU cache.
    _BLOCK = 32_768

    def _score(self, bins_of: Sequence[_BinSource], n: int, reasons: bool) -> BatchScores:
        total, have, top = self._accumulate(bins_of, n, reasons=reasons)
        scores, pd, coverage, insufficient = self._finish(total, have / self._n)
        if top is not None:
            top[insufficient] = -1
        return BatchScores(scores, pd, coverage, insufficient, top, self.reason_table if reasons else ())

    def _column_bins(self, columns: Mapping[str, Any], n: int) -> list[_BinSource]:
        """Per model feature, what gives the bins of rows ``[start, stop)``: a
        numeric column is located block by block; a categorical one once (its
        categories are looked up per distinct value); an absent one is "no data"."""
        sources: list[_BinSource] = []
        for f in self._features:
            column = columns.get(f.name)
            if column is None:
                sources.append(_constant_bins(f.missing_index))
            elif f.kind == NUMERIC:
                try:
                    x = np.asarray(column, dtype=np.float64)
                except (TypeError, ValueError):
                    raise FeatureValueError(f.name, "numeric values expected (NaN for no data)") from None
                if x.ndim != 1:
                    raise FeatureValueError(f.name, "a column must be one-dimensional")
                _checked(x, n, f.name)
                # A column of a row-major matrix is strided: one copy of the block
                # makes the comparisons that locate its bins run on contiguous values.
                sources.append(_located(f, x))
            else:
                sources.append(_sliced(_checked(f.locate_np(column), n, f.name)))
        return sources

    def _matrix_columns(self, X: np.ndarray, feature_names: Sequence[str]) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ValueError(f"X must be (n, {len(feature_names)}), not {X.shape}")
        unknown = sorted(set(feature_names) - self._known)
        if unknown:
            raise UnknownFeatureError(unknown)
        columns = {name: X[:, j] for j, name in enumerate(feature_names)}
        for f in self._features:
            if f.kind == CATEGORICAL and f.name in columns:
                raise FeatureValueError(f.name, "is categorical: score it with score_columns")
        return columns

    def _accumulate(
        self, bins_of: Sequence[_BinSource], n: int, *, reasons: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per row the unclamped points, how many features have data, and (with
        ``reasons``) the reason table indices of the four best-ranked losing bins
        (-1 padded).

        Points are added in model order, as ``score_one`` adds them, so both give
        bit-identical totals. The reasons keep, per row, the four smallest rank
        keys (``_rank_reasons_and_offers``) seen so far, sorted, and insert each
        feature's key with four element-wise min/max steps: a sorting network, no
        per-row sort."""
        total = np.empty(n, dtype=np.float64)
        have = np.empty(n, dtype=np.int32)
        top = np.empty((n, MAX_REASONS), dtype=self._key_code.dtype) if reasons else None
        for start in range(0, n, self._BLOCK):
            stop = min(n, start + self._BLOCK)
            block_total = total[start:stop]
            block_total.fill(self.intercept_points)
            block_have = have[start:stop]
            block_have.fill(0)
            if top is not None:
                kept = [np.full(stop - start, self._no_reason, dtype=self._key_dtype) for _ in range(MAX_REASONS)]
                spare = np.empty(stop - start, dtype=self._key_dtype)
            for f, source in zip(self._features, bins_of, strict=True):
                bins = source(start, stop)
                block_total += f.points_np[bins]
                block_have += bins != f.missing_index
                if top is not None:
                    key = f.reason_keys_np[bins]
                    for j in range(MAX_REASONS):
                        np.minimum(kept[j], key, out=spare)
                        np.maximum(kept[j], key, out=key)
                        kept[j], spare = spare, kept[j]
            if top is not None:
                for j in range(MAX_REASONS):
                    top[start:stop, j] = self._key_code[kept[j]]
        return total, have, top

    def _finish(
        self, total: np.ndarray, coverage: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        insufficient = coverage < self.min_coverage
        scaling = self.scaling
        scores = np.clip(np.floor(total + 0.5), scaling.clamp_low, scaling.clamp_high).astype(np.int32)
        pd = _probability_of_bad_np(total, scaling)
        scores[insufficient] = 0
        pd[insufficient] = np.nan
        return scores, pd, coverage, insufficient


_BinSource = Callable[[int, int], np.ndarray]
"""``source(start, stop)``: the bins of rows ``[start, stop)`` of one feature."""


def _bin_slots(f: _Feature) -> tuple[tuple[float, int, int | None], ...]:
    """Per bin of ``f``: its points, reason rank key and offer key (or None)."""
    return tuple(zip(f.points, f.reason_keys, f.offer_keys, strict=True))


def _sliced(bins: npt.NDArray[np.intp]) -> _BinSource:
    def source(start: int, stop: int) -> npt.NDArray[np.intp]:
        return bins[start:stop]

    return source


def _located(feature: _Feature, x: Floats) -> _BinSource:
    def source(start: int, stop: int) -> npt.NDArray[np.intp]:
        return feature.locate_np(np.ascontiguousarray(x[start:stop]))

    return source


def _constant_bins(index: int) -> _BinSource:
    def source(start: int, stop: int) -> np.ndarray:
        return np.full(stop - start, index, dtype=np.intp)

    return source


def _rows_of(columns: Mapping[str, Any], n_rows: int | None) -> int:
    lengths = {len(column) for column in columns.values()}
    if n_rows is not None:
        lengths.add(n_rows)
    if len(lengths) != 1:
        raise ValueError("columns must all have the same length" if lengths else "no columns given (pass n_rows)")
    return lengths.pop()


def _checked(bins: np.ndarray, n: int, name: str) -> np.ndarray:
    if bins.shape != (n,):
        raise FeatureValueError(name, f"column of {bins.shape[0]} rows, expected {n}")
    return bins
