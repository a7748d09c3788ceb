"""Binning: WoE/IV of a small table by hand, the dynamic programme against brute force
over every partition, minimum bin size, monotone and auto trends, categories (rare
ones pooled, unseen ones), special values, and the specs' derived codes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from creditscore.features.catalog import by_name
from creditscore.scorecard.binning import (
    CATEGORICAL,
    NUMERIC,
    PEAK,
    VALLEY,
    FeatureSpec,
    _best_partition,
    code_for,
    fit_binning,
    woe_iv,
)


def rows(table: list[tuple[float, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Values and outcomes from ``(value, goods, bads)`` rows."""
    x: list[float] = []
    y: list[int] = []
    for value, goods, bads in table:
        x += [value] * (goods + bads)
        y += [0] * goods + [1] * bads
    return np.array(x, dtype=np.float64), np.array(y)


def iv_by_hand(table: list[tuple[int, int]]) -> float:
    """IV of ``(goods, bads)`` bins, +0.5 per cell, totals + 0.5 per bin."""
    k = len(table)
    goods = sum(g for g, _ in table) + 0.5 * k
    bads = sum(b for _, b in table) + 0.5 * k
    return sum(
        ((g + 0.5) / goods - (b + 0.5) / bads) * math.log(((g + 0.5) / goods) / ((b + 0.5) / bads)) for g, b in table
    )


# values 1-4 (10 rows each) with 6, 4, 2, 1 bads, and 10 missing rows with 3 bads.
SMALL = [(1.0, 4, 6), (2.0, 6, 4), (3.0, 8, 2), (4.0, 9, 1), (math.nan, 7, 3)]


def test_the_iv_optimal_two_bins_of_a_small_table_by_hand():
    x, y = rows(SMALL)
    b = fit_binning(x, y, FeatureSpec("x", NUMERIC, direction=+1), max_bins=2, min_bin_share=0.2)
    # The two-bin partitions, with the missing bin (7 goods, 3 bads) beside them:
    #   {1} {2,3,4}: IV 0.36512   {1,2} {3,4}: IV 0.48008   {1,2,3} {4}: IV 0.26860
    assert iv_by_hand([(4, 6), (23, 7), (7, 3)]) == pytest.approx(0.365124, abs=1e-6)
    assert iv_by_hand([(10, 10), (17, 3), (7, 3)]) == pytest.approx(0.480085, abs=1e-6)
    assert iv_by_hand([(18, 12), (9, 1), (7, 3)]) == pytest.approx(0.268601, abs=1e-6)
    assert b.edges == (2.5,)  # a short number between 2 and 3
    assert (b.counts, b.bads, b.goods) == ((20, 20, 10), (10, 3, 3), (10, 17, 7))
    assert b.iv == pytest.approx(0.480085, abs=1e-6)
    # WoE = ln(good share / bad share) over 3 bins: totals 34 + 1.5 and 16 + 1.5.
    assert b.woe == pytest.approx(
        (math.log((10.5 / 35.5) / (10.5 / 17.5)), math.log((17.5 / 35.5) / (3.5 / 17.5)),
         math.log((7.5 / 35.5) / (3.5 / 17.5)))
    )
    assert sum(b.iv_bins) == pytest.approx(b.iv)
    assert b.transform(np.array([0.0, 2.4999, 2.5, 99.0, np.nan])).tolist() == [0, 0, 1, 1, 2]


def test_woe_iv_of_a_table_with_an_empty_bin():
    # An empty bin: WoE 0, nothing to the IV, smoothing over the two filled bins.
    woe, iv = woe_iv(np.array([10, 20, 0]), np.array([5, 2, 0]))
    assert woe.tolist() == pytest.approx([math.log(8 / 24), math.log((18.5 / 24) / (2.5 / 8)), 0.0])
    assert iv == pytest.approx(iv_by_hand([(5, 5), (18, 2)]))


def brute_force(rows_: np.ndarray, bads: np.ndarray, extra: list[tuple[int, int]], min_count: int,
                max_bins: int, trend: int | str | None, only: tuple[int, ...] | None = None) -> float | None:
    """The best IV over every partition of the pre-bins into contiguous groups
    (``only``: just the partition with these cuts) that keeps the trend."""
    m = len(rows_)
    best = None
    for k in range(1, min(max_bins, m) + 1):
        for cuts in itertools.combinations(range(1, m), k - 1):
            if only is not None and cuts != only:
                continue
            bounds = [0, *cuts, m]
            groups = [(int(rows_[a:b].sum()), int(bads[a:b].sum())) for a, b in zip(bounds, bounds[1:], strict=False)]
            if min(n for n, _ in groups) < min_count:
                continue
            rates = [b / n for n, b in groups]
            odds = [math.log((n - b + 0.5) / (b + 0.5)) for n, b in groups]
            steps = list(zip(zip(rates, odds, strict=False), zip(rates[1:], odds[1:], strict=False), strict=False))
            falls = [r2 < r1 and o2 > o1 for (r1, o1), (r2, o2) in steps]
            rises = [r2 > r1 and o2 < o1 for (r1, o1), (r2, o2) in steps]
            if trend == 1 and not all(falls):
                continue
            if trend == -1 and not all(rises):
                continue
            if trend in (VALLEY, PEAK):
                down, up = (falls, rises) if trend == VALLEY else (rises, falls)
                if not any(all(down[:t]) and all(up[t:]) for t in range(len(steps) + 1)):
                    continue
            table = [(n - b, b) for n, b in groups] + [(g, b) for g, b in extra if g + b > 0]
            value = iv_by_hand(table)
            if best is None or value > best:
                best = value
    return best


@pytest.mark.parametrize("trend", [1, -1, None, VALLEY, PEAK])
def test_the_dynamic_programme_finds_the_best_partition_that_brute_force_finds(trend):
    rng = np.random.default_rng(17)
    for _ in range(60):
        m = int(rng.integers(1, 8))
        counts = rng.integers(1, 40, m)
        bads = rng.binomial(counts, rng.uniform(0.05, 0.7, m))
        extra_rows = np.array([rng.integers(0, 20), rng.integers(0, 20)])
        extra_bads = rng.binomial(extra_rows, 0.3)
        min_count = int(rng.integers(1, 40))
        max_bins = int(rng.integers(1, 6))
        found = _best_partition(counts, bads, extra_rows=extra_rows, extra_bads=extra_bads,
                                min_count=min_count, max_bins=max_bins, trend=trend)
        extra = list(zip(extra_rows - extra_bads, extra_bads, strict=True))
        expected = brute_force(counts, bads, extra, min_count, max_bins, trend)
        if expected is None:  # not even one group is big enough: one group regardless
            assert found.starts == (0,)
        else:
            assert found.iv == pytest.approx(expected, abs=1e-9)
            # The partition returned is one that brute force accepts, with that IV.
            bounds = [*found.starts, m]
            assert len(found.starts) <= max_bins and found.starts[0] == 0
            extra = list(zip(extra_rows - extra_bads, extra_bads, strict=True))
            accepted = brute_force(counts[: m], bads[: m], extra, min_count, max_bins, trend, only=tuple(bounds[1:-1]))
            assert accepted == pytest.approx(found.iv, abs=1e-9)


def u_shaped(n: int = 20000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    y = (rng.random(n) < 0.05 + 0.4 * (x - 0.5) ** 2 * 4).astype(np.int8)
    x[:1000] = np.nan
    return x, y


def test_bins_are_monotone_in_the_direction_asked_and_hold_the_minimum_share():
    x, y = u_shaped()
    for direction in (+1, -1):
        b = fit_binning(x, y, FeatureSpec("x", NUMERIC, direction=direction), max_bins=6, min_bin_share=0.07)
        rates = np.array(b.bad_rates()[: b.n_regular])
        assert (np.diff(rates) * direction < 0).all()
        assert (np.diff(b.woe[: b.n_regular]) * direction > 0).all()  # points follow the same way
        assert min(b.counts[: b.n_regular]) >= 0.07 * len(x) and b.n_regular <= 6
        assert b.counts[-1] == 1000 and sum(b.counts) == len(x) and b.direction == direction
    free = fit_binning(x, y, FeatureSpec("x", NUMERIC), max_bins=6, min_bin_share=0.05, monotone=False)
    steps = np.diff(np.array(free.bad_rates()[: free.n_regular]))
    assert (steps < 0).any() and (steps > 0).any()  # the U shape survives without the constraint
    assert min(free.counts[:-1]) >= 0.05 * len(x)


def test_auto_direction_picks_the_trend_with_the_higher_iv():
    rng = np.random.default_rng(4)
    x = rng.normal(size=10000)
    y = (rng.random(10000) < 1 / (1 + np.exp(2 + 1.2 * x))).astype(np.int8)  # bad rate falls as x rises
    auto = fit_binning(x, y, FeatureSpec("x", NUMERIC))
    up = fit_binning(x, y, FeatureSpec("x", NUMERIC, direction=+1))
    down = fit_binning(x, y, FeatureSpec("x", NUMERIC, direction=-1))
    assert up.iv > down.iv
    assert auto.direction == +1 and auto.edges == up.edges and auto.iv == up.iv
    flipped = fit_binning(-x, y, FeatureSpec("x", NUMERIC))
    assert flipped.direction == -1 and flipped.iv == pytest.approx(up.iv)


def test_categories_grouped_in_bad_rate_order_rare_ones_pooled_unseen_ones_placed():
    table = {"own": (400, 20), "rent": (300, 60), "family": (200, 30), "boat": (10, 8), "van": (12, 6)}
    values: list[str | None] = []
    y: list[int] = []
    for category, (goods, bads) in table.items():
        values += [category] * (goods + bads)
        y += [0] * goods + [1] * bads
    values += [None] * 40 + [""] * 10  # missing
    y += [0] * 35 + [1] * 15
    column = np.array(values, dtype=object)
    b = fit_binning(column, np.array(y), FeatureSpec("housing", CATEGORICAL), max_bins=8, min_bin_share=0.03)
    # boat (18 rows) and van (18) are under 3% of 1086 rows: pooled into "other".
    other = b.groups[b.other_bin]
    assert {"boat", "van"} <= set(other)
    assert sorted(c for g in b.groups for c in g) == ["boat", "family", "own", "rent", "van"]
    rates = [r for r in b.bad_rates()[: b.n_regular]]
    assert rates == sorted(rates)  # groups in rising bad-rate order
    assert b.groups[0] == ("own",) and b.counts[-1] == 50 and b.bads[-1] == 15
    index = b.transform(np.array(["own", "van", "yacht", None, "", "rent"], dtype=object))
    assert index.tolist() == [0, b.other_bin, b.other_bin, b.missing_index, b.missing_index,
                              b.groups.index(next(g for g in b.groups if "rent" in g))]
    # Without rare categories there is no "other" group: an unseen one is "no data".
    common = fit_binning(column, np.array(y), FeatureSpec("housing", CATEGORICAL), min_bin_share=0.01)
    assert common.other_bin is None
    assert common.transform(np.array(["yacht"], dtype=object)).tolist() == [common.missing_index]


def test_special_values_get_bins_of_their_own_rare_ones_go_with_missing():
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 100, 5000)
    y = (rng.random(5000) < 0.1).astype(np.int8)
    x[:600] = -999.0  # 12%: a bin of its own
    y[:600] = (rng.random(600) < 0.5)
    x[600:650] = -1.0  # 1%: too rare, pooled with missing
    x[650:900] = np.nan
    b = fit_binning(x, y, FeatureSpec("x", NUMERIC, special_values=(-999, -1, -5)), min_bin_share=0.05)
    assert b.specials == (-999.0,) and set(b.pooled_specials) == {-1.0, -5.0}
    special = b.n_regular
    assert b.counts[special] == 600 and b.bads[special] == int(y[:600].sum())
    assert b.counts[-1] == 300  # 250 missing + 50 rows of -1
    assert all(e > 0 for e in b.edges)  # the codes never shape the regular bins
    index = b.transform(np.array([-999.0, -1.0, -5.0, np.nan, 50.0]))
    assert index.tolist()[:4] == [special, b.missing_index, b.missing_index, b.missing_index]
    assert index[4] < b.n_regular


def test_a_constant_or_empty_column_gets_one_bin():
    one = fit_binning(np.full(100, 3.0), np.r_[np.zeros(90), np.ones(10)], FeatureSpec("c", NUMERIC))
    assert one.edges == () and one.counts == (100, 0) and one.iv == 0.0
    empty = fit_binning(np.full(100, np.nan), np.r_[np.zeros(90), np.ones(10)], FeatureSpec("c", NUMERIC))
    assert empty.counts == (0, 100) and empty.iv == 0.0
    outcomes = np.r_[np.ones(90), np.zeros(210), np.ones(35), np.zeros(665)]
    binary = fit_binning(np.r_[np.zeros(300), np.ones(700)], outcomes, FeatureSpec("b", NUMERIC, direction=+1))
    assert binary.edges == (0.5,) and binary.value_type == "binary"


def test_specs_derive_codes_and_texts_from_the_name_or_the_catalog():
    spec = FeatureSpec.for_column("Monthly income (EUR)", NUMERIC)
    assert spec.reason_code == "MONTHLY_INCOME_EUR" and spec.missing_reason_code == "MONTHLY_INCOME_EUR_NO_DATA"
    assert spec.reason_text == "Monthly income (EUR): value in a higher-risk range"
    assert spec.missing_text == "Monthly income (EUR): no data"
    assert (spec.direction, spec.actionable, spec.label) == (0, False, "Monthly income (EUR)")
    assert code_for("2nd job") == "F_2ND_JOB" and code_for("--") == "FEATURE"
    catalog = FeatureSpec.from_catalog(by_name("pay_ontime_ratio_12m"))
    assert (catalog.kind, catalog.direction, catalog.actionable) == (NUMERIC, 1, True)
    assert catalog.reason_code == "PAY_ONTIME_RATIO_12M"
    assert catalog.missing_reason_code == "PAY_ONTIME_RATIO_12M_NO_DATA"
    assert catalog.improve_hint == "Pay every bill by its due date" and catalog.label == "on-time share"
    with pytest.raises(ValueError, match="kind"):
        FeatureSpec("x", "text")
    with pytest.raises(ValueError, match="special values"):
        FeatureSpec("x", CATEGORICAL, special_values=(-1,))
    with pytest.raises(ValueError, match="direction"):
        FeatureSpec("x", NUMERIC, direction=2)


def test_regular_bins_are_searchsorted_bins_for_any_number_of_edges():
    from creditscore.scorecard.binning import COMPARE_EDGES, regular_bins

    rng = np.random.default_rng(3)
    grid = np.linspace(-3, 3, 61)
    for n_edges in (0, 1, 5, COMPARE_EDGES, COMPARE_EDGES + 1, 40):
        edges = np.sort(rng.choice(grid, size=n_edges, replace=False))
        x = rng.choice(np.r_[grid, grid + 0.05, np.nan, -np.inf, np.inf], size=5000)  # on and between edges
        expected = np.searchsorted(edges, x, side="right")
        nan = np.isnan(x)
        for missing in (0, 1, n_edges + 1, n_edges + 3, 300):
            got = regular_bins(x, edges.tolist(), missing=missing)
            assert got.dtype == np.intp
            assert np.array_equal(got[~nan], expected[~nan]) and (got[nan] == missing).all()
        assert np.array_equal(regular_bins(x, edges.tolist())[~nan], expected[~nan])


def test_a_valley_when_asked_for_and_monotone_bins_otherwise():
    x, y = u_shaped()
    valley = fit_binning(x, y, FeatureSpec("x", NUMERIC), max_bins=6, min_bin_share=0.05, unimodal=True)
    rates = np.array(valley.bad_rates()[: valley.n_regular])
    turn = int(np.argmin(rates))
    assert 0 < turn < len(rates) - 1  # it falls, then rises
    assert (np.diff(rates[: turn + 1]) < 0).all() and (np.diff(rates[turn:]) > 0).all()
    assert valley.direction == 0 and min(valley.counts[:-1]) >= 0.05 * len(x)
    monotone = fit_binning(x, y, FeatureSpec("x", NUMERIC), max_bins=6, min_bin_share=0.05)
    assert monotone.direction in (1, -1) and valley.iv > monotone.iv
    # A known direction is kept whatever is asked.
    known = fit_binning(x, y, FeatureSpec("x", NUMERIC, direction=1), max_bins=6, unimodal=True)
    assert known.direction == 1 and (np.diff(np.array(known.bad_rates()[: known.n_regular])) < 0).all()
