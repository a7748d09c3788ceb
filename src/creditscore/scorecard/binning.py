"""Per-feature binning for scorecards: fine pre-bins, then the partition into at most
``max_bins`` bins that maximizes information value under a minimum bin size and a
monotone bad rate, found exactly (for the pre-bins) by dynamic programming.

Pure numpy: no gRPC, no SQL. ``fit_binning`` bins one column against outcomes
(1 = bad); the ``Binning`` it returns maps values to bins (``transform``) and
carries each bin's counts, weight of evidence and information value.

Bins of a feature, in this order (the layout of every per-bin array here and of
the artifact's points)::

    regular bins   numeric: right-open [lo, hi) between the inner ``edges``;
                   categorical: ``groups`` of categories
    special bins   numeric only: one per special value (e.g. -999) with enough rows
    missing bin    "no data": NaN / None / empty, always present, last

Numeric features
----------------
1. Pre-binning: the present values that are neither missing nor special are cut at
   up to ``max_prebins - 1`` quantiles (each cut a short, readable number strictly
   between two distinct observed values, so that ties are never split).
2. The optimal partition: contiguous groups of pre-bins, at most ``max_bins`` of
   them, each holding at least ``min_bin_share`` of *all* rows (missing and special
   ones included), with a strictly monotone bad rate (and weight of evidence) in the
   trend, maximizing the feature's information value (the special and missing bins
   included, with the smoothing below). The dynamic programme runs over states
   (last group, number of groups) and is exact for the pre-bins; because the
   smoothing's totals depend on the number of bins, it is solved once per number of
   bins and the best is kept (fewer bins on a tie).
3. Trend: ``direction`` +1 (higher value is better: the bad rate falls as the value
   rises), -1 (lower is better: it rises), or 0 (auto: both are solved and the one
   with the higher IV is kept, +1 on a tie). ``Binning.direction`` records the trend
   the bins follow (0 for none). On request (``fit_binning(unimodal=True)``) a
   feature of unknown direction may also take a peak or a valley (the bad rate
   rising then falling, or the reverse), solved by the same programme with a
   second table for the groups after the turn.
4. Special values: each declared special value with at least ``min_bin_share`` of
   the rows gets a bin of its own; rarer ones (and ones never seen) are pooled with
   the missing bin (``pooled_specials``).

Categorical features
--------------------
Categories with fewer than ``min_bin_share`` of the rows are pooled into one "other"
group; the categories (and that group) are ordered by their smoothed bad rate
``(bads + 0.5) / (rows + 1)``, ties by name, and the same dynamic programme groups
them contiguously in that order (monotone in that order by construction). The bin
holding the "other" group is ``other_bin``. At scoring time a category never seen in
training falls into ``other_bin`` when there is one, else into the missing bin.

Weight of evidence and information value
----------------------------------------
Over the ``k`` bins that hold rows,
``WoE_i = ln(((g_i + .5) / (G + .5 k)) / ((b_i + .5) / (B + .5 k)))`` and
``IV = sum_i (good share_i - bad share_i) * WoE_i`` (``woe_iv``). A bin without
training rows (typically the missing bin when every training row had a value) gets
WoE 0, no evidence either way, and adds nothing to the IV.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import Feature

__all__ = [
    "CATALOG_LABELS",
    "CATEGORICAL",
    "COMPARE_EDGES",
    "MAX_PREBINS",
    "NUMERIC",
    "PEAK",
    "SMOOTHING",
    "VALLEY",
    "Binning",
    "FeatureBins",
    "FeatureSpec",
    "bin_feature",
    "categorical_keys",
    "code_for",
    "fit_binning",
    "readable_edge",
    "regular_bins",
    "woe_iv",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"
SMOOTHING = 0.5
MAX_PREBINS = 50
_KINDS = (NUMERIC, CATEGORICAL)
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")

#: Short names of the catalog features, and the kind of value each holds ("binary"
#: 0/1, "integer" counts, "real"), for the texts of "how to improve".
CATALOG_LABELS: dict[str, tuple[str, str]] = {
    "pay_ontime_ratio_12m": ("on-time share", "real"),
    "pay_worst_days_late_12m": ("worst days late", "integer"),
    "pay_bills_paid_count": ("bills paid", "integer"),
    "pay_utility_telecom_months_12m": ("months with a utility or phone bill paid", "integer"),
    "pay_unpaid_past_due_amount": ("amount unpaid past due", "real"),
    "buyer_completion_rate_12m": ("share of orders completed", "real"),
    "buyer_cancel_dispute_rate_12m": ("share of orders cancelled, disputed or unpaid", "real"),
    "buyer_order_count_12m": ("orders placed", "integer"),
    "seller_fulfilment_rate_12m": ("share of sold orders fulfilled", "real"),
    "seller_avg_rating_24m": ("average rating", "real"),
    "seller_dispute_rate_12m": ("share of sold orders disputed or refunded", "real"),
    "identity_months_at_residence": ("months at the residence", "integer"),
    "identity_months_with_phone": ("months with the phone number", "integer"),
    "identity_verified": ("identity verified", "binary"),
    "history_months": ("months of history", "integer"),
    "ext_delinquencies_24m": ("delinquencies", "integer"),
    "ext_judgments_arrears_60m": ("judgments or tax arrears", "integer"),
    "ext_open_loans": ("open loans", "integer"),
    "ext_repayment_ontime_ratio_24m": ("on-time share of loan repayments", "real"),
    "ext_collections_60m": ("accounts in collection", "integer"),
}


def code_for(name: str) -> str:
    """An UPPER_SNAKE reason code derived from a column name: runs of anything but
    letters and digits become one ``_``; a code that would not start with a letter
    is prefixed with ``F_`` (``"2nd income"`` -> ``F_2ND_INCOME``)."""
    code = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
    if not code or not code[0].isalpha():
        code = f"F_{code}" if code else "FEATURE"
    return code


@dataclass(frozen=True)
class FeatureSpec:
    """What the trainer needs to know about one feature besides its values: its
    kind, the trend it must follow, special codes, and the texts a score shows.

    ``direction``: +1 higher value is better (the bad rate falls as it rises), -1
    lower is better, 0 auto (the monotone trend with the higher IV). Empty codes and
    texts are derived from the name (see ``for_column``)."""

    name: str
    kind: str  # NUMERIC or CATEGORICAL
    direction: int = 0
    special_values: tuple[float, ...] = ()
    reason_code: str = ""
    reason_text: str = ""
    missing_reason_code: str = ""
    missing_text: str = ""
    actionable: bool = False
    improve_hint: str = ""
    label: str = ""  # a short name for texts; defaults to the name

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a feature needs a name")
        if self.kind not in _KINDS:
            raise ValueError(f"feature {self.name!r}: kind must be one of {_KINDS}, not {self.kind!r}")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"feature {self.name!r}: direction must be -1, 0 or +1")
        specials = tuple(float(v) for v in self.special_values)
        if specials and self.kind != NUMERIC:
            raise ValueError(f"feature {self.name!r}: special values are for numeric features only")
        if not all(math.isfinite(v) for v in specials) or len(set(specials)) != len(specials):
            raise ValueError(f"feature {self.name!r}: special values must be finite and distinct")
        object.__setattr__(self, "special_values", specials)
        code = self.reason_code or code_for(self.name)
        defaults = {
            "reason_code": code,
            "reason_text": self.reason_text or f"{self.name}: value in a higher-risk range",
            "missing_reason_code": self.missing_reason_code or f"{code}_NO_DATA",
            "missing_text": self.missing_text or f"{self.name}: no data",
            "label": self.label or self.name,
        }
        for key, value in defaults.items():
            object.__setattr__(self, key, value)
        for key in ("reason_code", "missing_reason_code"):
            if not _CODE_RE.match(getattr(self, key)):
                raise ValueError(f"feature {self.name!r}: {key} must be UPPER_SNAKE")

    @classmethod
    def from_catalog(cls, feature: Feature) -> FeatureSpec:
        """The spec of a catalog feature: numeric, its direction, its codes and texts."""
        label = CATALOG_LABELS.get(feature.name, (feature.name, "real"))[0]
        return cls(
            name=feature.name,
            kind=NUMERIC,
            direction=feature.direction,
            reason_code=feature.reason_code,
            reason_text=feature.reason_text,
            missing_reason_code=feature.missing_reason_code,
            missing_text=feature.missing_text,
            actionable=feature.actionable,
            improve_hint=feature.improve_hint,
            label=label,
        )

    @classmethod
    def for_column(cls, name: str, kind: str, direction: int = 0) -> FeatureSpec:
        """The spec of a column of an analyst's table: code ``UPPER_SNAKE`` of the
        name (``code_for``), texts "<name>: value in a higher-risk range" and
        "<name>: no data", not actionable."""
        return cls(name=name, kind=kind, direction=direction)


# ---------------------------------------------------------------- WoE and IV


def woe_iv(counts: np.ndarray, bads: np.ndarray) -> tuple[np.ndarray, float]:
    """Weight of evidence per bin and the information value of the whole table.

    Over the ``k`` bins that hold rows,
    ``WoE_i = ln(((g_i + .5) / (G + .5 k)) / ((b_i + .5) / (B + .5 k)))`` (so the
    smoothed shares still sum to one) and ``IV = sum((good share - bad share) * WoE)``.
    A bin without rows gets WoE 0, no evidence either way, and adds nothing to the IV."""
    woe, iv_bins = _woe_iv_bins(np.asarray(counts, dtype=np.float64), np.asarray(bads, dtype=np.float64))
    return woe, float(iv_bins.sum())


def _woe_iv_bins(counts: np.ndarray, bads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    goods = counts - bads
    filled = counts > 0
    k = int(filled.sum())
    good_share = np.where(filled, (goods + SMOOTHING) / (goods.sum() + SMOOTHING * k), 1.0)
    bad_share = np.where(filled, (bads + SMOOTHING) / (bads.sum() + SMOOTHING * k), 1.0)
    woe = np.log(good_share / bad_share)
    return woe, np.where(filled, (good_share - bad_share) * woe, 0.0)


# ---------------------------------------------------------------- the binning


@dataclass(frozen=True)
class Binning:
    """One feature's bins on the training rows (layout: regular bins, special bins,
    the missing bin; see the module docstring)."""

    spec: FeatureSpec
    direction: int  # trend the regular bins follow: +1 bad rate falls as the value rises, -1 rises, 0 none
    edges: tuple[float, ...]  # numeric: inner edges; regular bin i is [edges[i-1], edges[i])
    groups: tuple[tuple[str, ...], ...]  # categorical: the categories of each regular bin
    other_bin: int | None  # categorical: the regular bin of rare and unseen categories
    specials: tuple[float, ...]  # special values with a bin of their own, in bin order
    pooled_specials: tuple[float, ...]  # special values scored in the missing bin
    counts: tuple[int, ...]  # rows per bin (regular, special, missing)
    bads: tuple[int, ...]  # bads per bin
    woe: tuple[float, ...]
    iv_bins: tuple[float, ...]
    iv: float
    value_type: str = "real"  # numeric: "binary" (0/1), "integer" or "real" training values

    @cached_property
    def _bin_of_category(self) -> dict[str, int]:
        return {c: i for i, group in enumerate(self.groups) for c in group}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def n_regular(self) -> int:
        return len(self.groups) if self.kind == CATEGORICAL else len(self.edges) + 1

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def missing_index(self) -> int:
        return len(self.counts) - 1

    @property
    def goods(self) -> tuple[int, ...]:
        """Goods per bin (rows less bads)."""
        return tuple(c - b for c, b in zip(self.counts, self.bads, strict=True))

    def bad_rates(self) -> list[float | None]:
        """Bad rate per bin (None for a bin without rows)."""
        return [b / c if c else None for b, c in zip(self.bads, self.counts, strict=True)]

    def transform(self, values: Any) -> np.ndarray:
        """The bin index (int64) of every value: numeric values as float64 with NaN
        for missing; categorical values as str with None or "" for missing (an
        unseen category: ``other_bin``, else the missing bin)."""
        if self.kind == NUMERIC:
            x = np.asarray(values, dtype=np.float64)
            index = regular_bins(x, self.edges).astype(np.int64, copy=False)
            for k, value in enumerate(self.specials):
                index[x == value] = self.n_regular + k
            for value in self.pooled_specials:
                index[x == value] = self.missing_index
            index[np.isnan(x)] = self.missing_index
            return index
        present, keys = categorical_keys(values)
        index = np.full(len(present), self.missing_index, dtype=np.int64)
        if keys.size:
            unseen = self.other_bin if self.other_bin is not None else self.missing_index
            distinct, inverse = np.unique(keys, return_inverse=True)
            table = np.array([self._bin_of_category.get(str(c), unseen) for c in distinct], dtype=np.int64)
            index[present] = table[inverse]
        return index


#: Up to this many inner edges, ``regular_bins`` counts the edges at or below each
#: value (one vectorised comparison per edge) instead of a binary search: for the
#: few edges of a scorecard feature that is several times faster than
#: ``np.searchsorted`` and gives the same bins.
COMPARE_EDGES = 24


def regular_bins(x: np.ndarray, edges: Sequence[float], *, missing: int | None = None) -> np.ndarray:
    """The right-open regular bin (intp) of every value of the float64 column ``x``:
    how many of the increasing inner ``edges`` are at or below it
    (``np.searchsorted(edges, x, side="right")``). NaN gets ``missing`` when given;
    otherwise its bin is unspecified (callers overwrite it).

    Up to ``COMPARE_EDGES`` edges (and a ``missing`` below 256) the count is kept
    in one byte per value, one comparison per edge, and widened once at the end:
    several times faster than the binary search for the few edges of a feature."""
    if len(edges) > COMPARE_EDGES or (missing is not None and not 0 <= missing < 256):
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="right")
        if missing is not None:
            index[np.isnan(x)] = missing
        return index
    count = np.zeros(x.shape, dtype=np.uint8)
    mask = np.empty(x.shape, dtype=bool)
    flags = mask.view(np.uint8)
    for edge in edges:
        np.greater_equal(x, edge, out=mask)  # False for NaN
        count += flags
    if missing:
        np.isnan(x, out=mask)  # NaN rows counted no edge: 0 + missing = missing
        if missing != 1:
            flags *= np.uint8(missing)
        count += flags
    return count.astype(np.intp)


_NONE = np.array(None, dtype=object)  # compared element by element with an object column


def categorical_keys(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(present mask, the present values as a str array)`` of a categorical
    column: None, "" and float NaN are missing."""
    column = np.asarray(values, dtype=object)
    if column.ndim != 1:
        raise ValueError("a categorical column must be one-dimensional")
    missing = np.equal(column, _NONE) | np.equal(column, "") | np.not_equal(column, column)
    present = ~missing
    return present, column[present].astype(str)


def readable_edge(below: float, above: float) -> float:
    """A short number ``e`` with ``below < e <= above``: the split between two
    consecutive distinct values, rounded as far as that stays true."""
    middle = (below + above) / 2.0
    for digits in range(12):
        candidate = round(middle, digits)
        if below < candidate <= above:
            return candidate
    return middle if below < middle <= above else above


def _prebins(
    present_sorted: np.ndarray, bad_sorted: np.ndarray, max_prebins: int
) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Quantile pre-bins of the sorted present values: ``(inner edges, rows, bads)``
    per pre-bin; every pre-bin holds rows and ties are never split."""
    n = len(present_sorted)
    if n == 0:
        return [], np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
    positions = np.unique(np.round(np.arange(1, max_prebins) * n / max_prebins).astype(np.int64))
    positions = positions[(positions > 0) & (positions < n)]
    values = present_sorted[positions]
    below = np.searchsorted(present_sorted, values, side="left") - 1  # last row of a smaller value
    edges = sorted(
        {
            readable_edge(float(present_sorted[b]), float(v))
            for b, v in zip(below.tolist(), values.tolist(), strict=True)
            if b >= 0
        }
    )
    cuts = np.asarray(edges, dtype=np.float64)
    rows = np.diff(np.concatenate([[0], np.searchsorted(present_sorted, cuts, side="left"), [n]]))
    bads = np.diff(np.concatenate([[0], np.searchsorted(bad_sorted, cuts, side="left"), [len(bad_sorted)]]))
    return edges, rows.astype(np.int64), bads.astype(np.int64)


PEAK = "peak"  # the bad rate rises, then falls (a partition with no fall is monotone, and allowed)
VALLEY = "valley"  # the bad rate falls, then rises
Trend = int | str | None  # +1, -1, PEAK, VALLEY, or None (no constraint)


@dataclass(frozen=True)
class _Partition:
    starts: tuple[int, ...]  # first pre-bin of every group
    iv: float


Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Programme:
    """The dynamic programme over the pre-bins: for every contiguous group ``[i, j)``
    (``i < j``) its goods and bads and whether it is big enough (``feasible``);
    which group may follow which (``first[h, i, j]``: ``[i, j)`` after ``[h, i)``;
    ``second``: the same after the turn of a peak or a valley); and the bins outside
    the partition (special, missing) that count in the IV and its smoothing."""

    m: int  # pre-bins
    g_ij: npt.NDArray[np.float64]
    b_ij: npt.NDArray[np.float64]
    feasible: Bools
    first: Bools
    second: Bools | None
    extra_g: npt.NDArray[np.float64]
    extra_b: npt.NDArray[np.float64]
    total_goods: float
    total_bads: float


class _Solution(NamedTuple):
    """The best ``k`` groups: their IV, the first pre-bin of the last group, whether
    the way to it had turned, and the back pointers of every step."""

    iv: float
    last: int
    turned: bool
    back: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp] | None, Bools | None]]


def _transitions(
    n_ij: npt.NDArray[np.float64], b_ij: npt.NDArray[np.float64], feasible: Bools, trend: Trend
) -> tuple[Bools, Bools | None]:
    """``(first, second)`` of ``_Programme`` for ``trend``."""
    g_ij = n_ij - b_ij
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(feasible, b_ij / n_ij, 0.0)
    log_odds = np.log(np.where(feasible, (g_ij + SMOOTHING) / (b_ij + SMOOTHING), 1.0))
    # step[h, i, j]: group [h, i) may be followed by group [i, j).
    both = feasible[:, :, None] & feasible[None, :, :]

    def step(direction: int) -> Bools:
        first_rate, next_rate = rate[:, :, None], rate[None, :, :]
        first_odds, next_odds = log_odds[:, :, None], log_odds[None, :, :]
        if direction > 0:
            return both & (next_rate < first_rate) & (next_odds > first_odds)
        return both & (next_rate > first_rate) & (next_odds < first_odds)

    if trend is None:
        return both, None
    if trend == VALLEY:
        return step(+1), step(-1)
    if trend == PEAK:
        return step(-1), step(+1)
    if trend in (1, -1):
        return step(int(trend)), None
    raise ValueError(f"trend must be +1, -1, {PEAK!r}, {VALLEY!r} or None, not {trend!r}")


def _most_groups(rows: npt.NDArray[np.int64], min_count: int) -> int:
    """The most groups of at least ``min_count`` rows there can be: cutting greedily
    as soon as a group is big enough gives the most (the rest joins the last group)."""
    most, filled = 0, 0.0
    for count in rows.tolist():
        filled += count
        if filled >= min_count:
            most, filled = most + 1, 0.0
    return most


def _solve(p: _Programme, k: int) -> _Solution | None:
    """The best partition into exactly ``k`` groups (None when there is none):
    ``value[i, j]`` is the best IV of groups covering pre-bins ``[0, j)`` whose last
    group is ``[i, j)``, ``turned`` the same for ways that turned already."""
    m = p.m
    smoothing_total = SMOOTHING * (k + len(p.extra_g))
    goods_total = p.total_goods + smoothing_total
    bads_total = p.total_bads + smoothing_total
    good_share = np.where(p.feasible, (p.g_ij + SMOOTHING) / goods_total, 1.0)
    bad_share = np.where(p.feasible, (p.b_ij + SMOOTHING) / bads_total, 1.0)
    term = np.where(p.feasible, (good_share - bad_share) * np.log(good_share / bad_share), -np.inf)
    value = np.where(p.feasible & (np.arange(m + 1) == 0)[:, None], term, -np.inf)  # one group from 0
    turned = np.full_like(value, -np.inf)
    back: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp] | None, Bools | None]] = []
    for _ in range(1, k):
        candidates = np.where(p.first, value[:, :, None], -np.inf)
        h = np.argmax(candidates, axis=0)  # the first best on a tie: deterministic
        new_value = np.take_along_axis(candidates, h[None], axis=0)[0] + term
        h_turned = from_turned = None
        if p.second is not None:
            from_turned = turned > value  # per group [h, i): was the best way to it turned already
            before = np.maximum(value, turned)
            candidates = np.where(p.second, before[:, :, None], -np.inf)
            h_turned = np.argmax(candidates, axis=0)
            turned = np.take_along_axis(candidates, h_turned[None], axis=0)[0] + term
        value = new_value
        back.append((h, h_turned, from_turned))
    ends = np.maximum(value[:, m], turned[:, m])
    i = int(np.argmax(ends))
    if not np.isfinite(ends[i]):
        return None
    extra_good_share = (p.extra_g + SMOOTHING) / goods_total
    extra_bad_share = (p.extra_b + SMOOTHING) / bads_total
    iv = float(ends[i]) + float(
        np.sum((extra_good_share - extra_bad_share) * np.log(extra_good_share / extra_bad_share))
    )
    return _Solution(iv, i, bool(turned[i, m] > value[i, m]), back)


def _starts(solution: _Solution, m: int) -> tuple[int, ...]:
    """The first pre-bin of every group of ``solution``, by its back pointers."""
    i = solution.last
    starts = [i]
    j = m
    in_turned = solution.turned
    for h, h_turned, from_turned in reversed(solution.back):
        if in_turned:
            assert h_turned is not None and from_turned is not None
            previous = int(h_turned[i, j])
            in_turned = bool(from_turned[previous, i])
        else:
            previous = int(h[i, j])
        i, j = previous, i
        starts.append(i)
    return tuple(reversed(starts))


def _best_partition(
    rows: npt.NDArray[np.int64],
    bads: npt.NDArray[np.int64],
    *,
    extra_rows: npt.NDArray[np.int64],
    extra_bads: npt.NDArray[np.int64],
    min_count: int,
    max_bins: int,
    trend: Trend,
) -> _Partition:
    """The IV-maximizing partition of the pre-bins ``rows``/``bads`` into contiguous
    groups (see the module docstring). ``extra_*`` are the bins outside the
    partition (special, missing) that count in the IV and its smoothing. ``trend``
    +1: bad rate strictly falling from group to group (and WoE strictly rising),
    -1 strictly rising, ``VALLEY``: strictly falling then strictly rising,
    ``PEAK``: strictly rising then strictly falling (each may also stay monotone),
    None: no constraint.

    The programme (``_solve``): ``value[i, j]`` is the best IV of groups covering
    pre-bins ``[0, j)`` whose last group is ``[i, j)``; one more group ``[j, l)`` may
    follow when ``allowed[i, j, l]`` (both groups big enough, the trend kept). A
    peak or a valley keeps two such tables: the groups so far still in the first
    direction (``value``), or turned already (``turned``), which only the second
    direction may follow. It is solved once per number of groups (the smoothing's
    totals depend on it) and the best is kept (fewer groups on a tie)."""
    m = len(rows)
    extra_filled = extra_rows > 0
    cum_n = np.concatenate([[0], np.cumsum(rows)]).astype(np.float64)
    cum_b = np.concatenate([[0], np.cumsum(bads)]).astype(np.float64)
    n_ij = cum_n[None, :] - cum_n[:, None]  # group [i, j) of pre-bins, i < j
    b_ij = cum_b[None, :] - cum_b[:, None]
    upper = np.triu(np.ones((m + 1, m + 1), dtype=bool), k=1)
    feasible = upper & (n_ij >= min_count)
    extra_g = (extra_rows - extra_bads)[extra_filled].astype(np.float64)
    extra_b = extra_bads[extra_filled].astype(np.float64)
    if not feasible[0, m]:  # too few rows for even one group of the minimum size
        return _Partition((0,), _iv_of([rows.sum()], [bads.sum()], extra_g, extra_b))
    first, second = _transitions(n_ij, b_ij, feasible, trend)
    programme = _Programme(
        m, n_ij - b_ij, b_ij, feasible, first, second, extra_g, extra_b,
        total_goods=float((rows - bads).sum() + (extra_rows - extra_bads).sum()),
        total_bads=float(bads.sum() + extra_bads.sum()),
    )
    best: _Partition | None = None
    for k in range(1, min(max_bins, m, max(_most_groups(rows, min_count), 1)) + 1):
        solution = _solve(programme, k)
        if solution is not None and (best is None or solution.iv > best.iv + 1e-12):
            best = _Partition(_starts(solution, m), solution.iv)
    assert best is not None  # k = 1 is feasible
    return best


def _iv_of(rows: Sequence[float], bads: Sequence[float], extra_g: np.ndarray, extra_b: np.ndarray) -> float:
    rows_a = np.asarray(rows, dtype=np.float64)
    bads_a = np.asarray(bads, dtype=np.float64)
    counts = np.concatenate([rows_a, extra_g + extra_b])
    return woe_iv(counts, np.concatenate([bads_a, extra_b]))[1]


def _realized_direction(counts: np.ndarray, bads: np.ndarray) -> int:
    """+1 when the bad rate strictly falls from bin to bin, -1 when it strictly
    rises, else 0 (a peak or a valley, or a single bin)."""
    rates = bads / np.maximum(counts, 1)
    steps = np.diff(rates)
    if steps.size and (steps < 0).all():
        return 1
    if steps.size and (steps > 0).all():
        return -1
    return 0


def _group(values: np.ndarray, starts: Sequence[int]) -> np.ndarray:
    return np.add.reduceat(values, np.asarray(starts, dtype=np.int64)) if len(values) else values


def fit_binning(
    values: Any,
    y: Any,
    spec: FeatureSpec,
    *,
    max_bins: int = 8,
    min_bin_share: float = 0.05,
    max_prebins: int = MAX_PREBINS,
    monotone: bool = True,
    unimodal: bool = False,
) -> Binning:
    """Bins one column against outcomes ``y`` (1 = bad) as the module docstring says.

    ``values``: float64 with NaN for missing (numeric), or str with None/"" for
    missing (categorical). ``monotone=False`` drops the monotone constraint for a
    numeric feature whose ``direction`` is 0 (the partition then maximizes IV
    freely); ``unimodal=True`` lets such a feature's bad rate also form a
    ``PEAK`` or a ``VALLEY`` (the shape with the highest IV wins). The trainer
    does not ask for that: on the German credit data, peak and valley bins
    chosen by IV, by a penalized likelihood or by cross-validation on the
    training rows all predicted held-out rows worse than monotone bins
    (docs/benchmarks.md). Categorical features are always grouped in bad-rate
    order."""
    if max_bins < 1 or not 0.0 < min_bin_share < 0.5 or max_prebins < 2:
        raise ValueError("max_bins must be >= 1, min_bin_share within (0, 0.5), max_prebins >= 2")
    y = np.asarray(y)
    n = len(y)
    limits = _Limits(max_bins, max(1, math.ceil(min_bin_share * n - 1e-9)), max_prebins)
    if spec.kind == NUMERIC:
        trends: list[Trend]
        if spec.direction:
            trends = [spec.direction]
        elif monotone:
            trends = [+1, -1, PEAK, VALLEY] if unimodal else [+1, -1]
        else:
            trends = [None]
        return _fit_numeric(np.asarray(values, dtype=np.float64), y, spec, limits, trends)
    return _fit_categorical(values, y.astype(np.int64, copy=False), spec, limits.max_bins, limits.min_count)


class _Limits(NamedTuple):
    max_bins: int
    min_count: int  # rows a bin holds at least
    max_prebins: int


class _NumericCounts(NamedTuple):
    """A numeric column counted: its regular values sorted (all rows' and the
    bads'), the special values with a bin of their own and those pooled with the
    missing bin, each ``(value, rows, bads)``, and the missing bin's rows and bads."""

    present_sorted: npt.NDArray[np.float64]
    bad_sorted: npt.NDArray[np.float64]
    own: list[tuple[float, int, int]]
    pooled: list[tuple[float, int, int]]
    missing_count: int
    missing_bads: int


def _count_numeric(x: npt.NDArray[np.float64], bad: Bools, spec: FeatureSpec, min_count: int) -> _NumericCounts:
    missing = np.isnan(x)
    special_rows: list[tuple[float, int, int]] = []
    regular = ~missing if spec.special_values else None
    for value in spec.special_values:
        hit = x == value
        special_rows.append((value, int(np.count_nonzero(hit)), int(np.count_nonzero(hit & bad))))
        regular &= ~hit
    own = [(v, c, b) for v, c, b in special_rows if c >= min_count]
    pooled = [(v, c, b) for v, c, b in special_rows if c < min_count]
    missing_count = int(np.count_nonzero(missing)) + sum(c for _, c, _ in pooled)
    missing_bads = int(np.count_nonzero(missing & bad)) + sum(b for _, _, b in pooled)
    if regular is None:
        # No special values: NaN sorts last, so the present values are a prefix of
        # the sorted column (no gather of the present rows needed).
        present_sorted = np.sort(x)[: x.size - int(np.count_nonzero(missing))]
        bad_values = x[bad]
        bad_sorted = np.sort(bad_values)[: bad_values.size - int(np.count_nonzero(np.isnan(bad_values)))]
    else:
        present_sorted = np.sort(x[regular])
        bad_sorted = np.sort(x[regular & bad])
    return _NumericCounts(present_sorted, bad_sorted, own, pooled, missing_count, missing_bads)


def _numeric_value_type(present: npt.NDArray[np.float64]) -> str:
    """"binary" (0/1), "integer" or "real", from the sorted present values."""
    if present.size == 0 or np.all(present == np.round(present)):
        return "binary" if present.size and present[0] >= 0.0 and present[-1] <= 1.0 else "integer"
    return "real"


def _fit_numeric(
    x: npt.NDArray[np.float64], y: npt.NDArray[Any], spec: FeatureSpec, limits: _Limits, trends: Sequence[Trend]
) -> Binning:
    if x.shape != y.shape:
        raise ValueError(f"feature {spec.name!r}: {x.shape[0] if x.ndim else 0} values for {len(y)} outcomes")
    if np.isinf(x).any():
        raise ValueError(f"feature {spec.name!r}: infinite values (NaN means no data)")
    bad = y if y.dtype == np.bool_ else y != 0  # a mask, not a gather: counting under a mask is cheap
    counted = _count_numeric(x, bad, spec, limits.min_count)
    edges, rows, bads = _prebins(counted.present_sorted, counted.bad_sorted, limits.max_prebins)
    extra_rows = np.array([c for _, c, _ in counted.own] + [counted.missing_count], dtype=np.int64)
    extra_bads = np.array([b for _, _, b in counted.own] + [counted.missing_bads], dtype=np.int64)
    chosen: tuple[Trend, _Partition] | None = None
    for trend in trends:
        partition = _best_partition(
            rows, bads, extra_rows=extra_rows, extra_bads=extra_bads,
            min_count=limits.min_count, max_bins=limits.max_bins, trend=trend,
        )
        if chosen is None or partition.iv > chosen[1].iv + 1e-12:
            chosen = (trend, partition)
    assert chosen is not None
    trend, partition = chosen
    starts = partition.starts
    n_regular = len(starts)
    counts = np.concatenate([_group(rows, starts), extra_rows])
    all_bads = np.concatenate([_group(bads, starts), extra_bads])
    woe, iv_bins = _woe_iv_bins(counts.astype(np.float64), all_bads.astype(np.float64))
    if trend in (1, -1):
        direction = int(trend)
    elif trend is None:
        direction = 0  # no constraint asked for: no trend recorded
    else:  # a peak or a valley was allowed: record the trend the bins took
        direction = _realized_direction(counts[:n_regular], all_bads[:n_regular])
    return Binning(
        spec=spec,
        direction=direction,
        edges=tuple(edges[s - 1] for s in starts[1:]),
        groups=(),
        other_bin=None,
        specials=tuple(v for v, _, _ in counted.own),
        pooled_specials=tuple(v for v, _, _ in counted.pooled),
        counts=tuple(int(c) for c in counts),
        bads=tuple(int(b) for b in all_bads),
        woe=tuple(float(w) for w in woe),
        iv_bins=tuple(float(v) for v in iv_bins),
        iv=float(iv_bins.sum()),
        value_type=_numeric_value_type(counted.present_sorted),
    )



OTHER = "\x00other"  # the pooled rare categories while grouping (never a real category name)


def _fit_categorical(values: Any, y: np.ndarray, spec: FeatureSpec, max_bins: int, min_count: int) -> Binning:
    present, keys = categorical_keys(values)
    if present.shape != y.shape:
        raise ValueError(f"feature {spec.name!r}: {len(present)} values for {len(y)} outcomes")
    missing_count = int((~present).sum())
    missing_bads = int(y[~present].sum())
    distinct, inverse = np.unique(keys, return_inverse=True)
    rows = np.bincount(inverse, minlength=len(distinct)).astype(np.int64)
    bads = np.bincount(inverse, weights=y[present], minlength=len(distinct)).round().astype(np.int64)

    # Categories with at least min_count rows stand alone; the rest form "other".
    items: list[tuple[tuple[str, ...], int, int]] = []
    rare: list[str] = []
    rare_rows = rare_bads = 0
    for category, r, b in zip(distinct.tolist(), rows.tolist(), bads.tolist(), strict=True):
        if r >= min_count:
            items.append(((category,), r, b))
        else:
            rare.append(category)
            rare_rows += r
            rare_bads += b
    if rare:
        items.append(((OTHER, *rare), rare_rows, rare_bads))
    items.sort(key=lambda it: ((it[2] + SMOOTHING) / (it[1] + 1.0), it[0][0] == OTHER, it[0]))

    extra_rows = np.array([missing_count], dtype=np.int64)
    extra_bads = np.array([missing_bads], dtype=np.int64)
    if items:
        item_rows = np.array([r for _, r, _ in items], dtype=np.int64)
        item_bads = np.array([b for _, _, b in items], dtype=np.int64)
        partition = _best_partition(
            item_rows, item_bads, extra_rows=extra_rows, extra_bads=extra_bads,
            min_count=min_count, max_bins=max_bins, trend=-1,
        )
        bounds = [*partition.starts, len(items)]
        groups: list[tuple[str, ...]] = []
        other_bin: int | None = None
        for g, (start, stop) in enumerate(pairwise(bounds)):
            members: list[str] = []
            for names, _, _ in items[start:stop]:
                if names[0] == OTHER:
                    other_bin = g
                    members.extend(names[1:])
                else:
                    members.extend(names)
            groups.append(tuple(sorted(members)))
        group_rows = _group(item_rows, partition.starts)
        group_bads = _group(item_bads, partition.starts)
    else:  # no present value at all: one empty bin
        groups, other_bin = [()], None
        group_rows = group_bads = np.zeros(1, dtype=np.int64)
    counts = np.concatenate([group_rows, extra_rows])
    all_bads = np.concatenate([group_bads, extra_bads])
    woe, iv_bins = _woe_iv_bins(counts.astype(np.float64), all_bads.astype(np.float64))
    return Binning(
        spec=spec,
        direction=0,
        edges=(),
        groups=tuple(groups),
        other_bin=other_bin,
        specials=(),
        pooled_specials=(),
        counts=tuple(int(c) for c in counts),
        bads=tuple(int(b) for b in all_bads),
        woe=tuple(float(w) for w in woe),
        iv_bins=tuple(float(v) for v in iv_bins),
        iv=float(iv_bins.sum()),
    )


# ---------------------------------------------------------------- one numeric column (matrix API)


@dataclass(frozen=True)
class FeatureBins:
    """One numeric feature's bins on the training rows: numeric bins
    ``[edges[i-1], edges[i])`` (``edges`` are the inner edges, so there are
    ``len(edges) + 1`` numeric bins), then the missing bin."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]  # rows per numeric bin
    bads: tuple[int, ...]  # bads per numeric bin
    missing_count: int
    missing_bads: int

    def all_counts(self) -> npt.NDArray[np.int64]:
        return np.array([*self.counts, self.missing_count], dtype=np.int64)

    def all_bads(self) -> npt.NDArray[np.int64]:
        return np.array([*self.bads, self.missing_bads], dtype=np.int64)

    def index(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """The bin of every value (NaN: the missing bin, last)."""
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), values, side="right")
        index[np.isnan(values)] = len(self.edges) + 1
        return index


def bin_feature(
    values: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    direction: int,
    max_bins: int = 6,
    min_bin_share: float = 0.05,
    n_candidates: int = 50,
) -> FeatureBins:
    """Bins one numeric column (NaN = no data) against outcomes ``y`` (1 = bad):
    the IV-optimal partition of up to ``n_candidates`` quantile pre-bins into at most
    ``max_bins`` bins, each with at least ``min_bin_share`` of *all* rows (missing
    included), the bad rate strictly monotone in ``direction`` (+1: falls as the
    value grows; -1: rises; 0: no constraint). ``fit_binning`` has the general form
    (categories, special values, the auto trend)."""
    binning = fit_binning(
        values, y, FeatureSpec("feature", NUMERIC, direction=direction),
        max_bins=max_bins, min_bin_share=min_bin_share, max_prebins=n_candidates, monotone=direction != 0,
    )
    return FeatureBins(
        binning.edges, binning.counts[:-1], binning.bads[:-1], binning.counts[-1], binning.bads[-1]
    )
