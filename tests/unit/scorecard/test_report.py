"""The HTML model report: the numbers behind its charts by hand, and a report of a
real (small) training run that is self-contained, has every section and shows the
model's own numbers."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from creditscore.scorecard.binning import CATEGORICAL, NUMERIC, FeatureSpec
from creditscore.scorecard.report import (
    bad_rate_by_band,
    calibration_by_decile,
    render_report,
    roc_curve,
    score_histogram,
    write_report,
)
from creditscore.scorecard.training import TrainResult, auc_score, ks_score, train_table

SECTIONS = ("headline", "roc", "calibration", "distribution", "bands", "iv", "points")


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    """A scorecard trained on 4000 rows of an analyst-style table: a numeric
    column with 10% missing, a count with a special code (-999), a categorical
    column, and a noise column the trainer drops."""
    rng = np.random.default_rng(3)
    n = 4000
    income = rng.normal(size=n)
    tenure = rng.poisson(3.0, size=n).astype(np.float64)
    housing = rng.choice(np.array(["own", "rent", "free", "shared"], dtype=object), p=[0.5, 0.3, 0.12, 0.08], size=n)
    effect = {"own": -0.4, "rent": 0.3, "free": 0.6, "shared": 0.5}
    logit = -1.3 - 0.9 * income - 0.25 * (tenure - 3.0) + np.array([effect[h] for h in housing])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    income[rng.random(n) < 0.1] = np.nan
    tenure[rng.random(n) < 0.08] = -999.0
    columns = {"income": income, "tenure": tenure, "housing": housing, "noise": rng.normal(size=n)}
    specs = [
        FeatureSpec("income", NUMERIC),
        FeatureSpec("tenure", NUMERIC, special_values=(-999.0,)),
        FeatureSpec("housing", CATEGORICAL),
        FeatureSpec("noise", NUMERIC),
    ]
    return train_table(columns, y, specs, version="0.3.1", description="synthetic <report> test table, seed 3", seed=5)


# ---------------------------------------------------------------- the numbers


def test_roc_curve_by_hand_with_ties() -> None:
    # Risks 0.9 (bad), 0.7 (good), 0.7 (bad), 0.2 (good): the tie moves together.
    fpr, tpr = roc_curve(np.array([1, 0, 1, 0]), np.array([0.9, 0.7, 0.7, 0.2]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    # Area 0.875 = (3 wins + a tie counted half) / 4 pairs.
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(0.875)


def test_roc_area_and_ks_match_the_trainer_metrics() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 3000)
    risk = np.round(rng.normal(size=3000) + 0.8 * y, 1)  # rounded: many ties
    fpr, tpr = roc_curve(y, risk)
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(auc_score(y, risk), abs=1e-12)
    assert float(np.max(tpr - fpr)) == pytest.approx(ks_score(y, risk), abs=1e-12)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)


def test_roc_curve_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        roc_curve(np.array([1, 1]), np.array([0.2, 0.4]))


def test_calibration_by_decile_by_hand() -> None:
    pd = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.4])
    y = np.array([1, 0, 0, 1, 1, 0])
    groups = calibration_by_decile(y, pd, groups=3)
    # Highest prediction (lowest score) first: (0.9, 0.8) (0.4, 0.3) (0.2, 0.1).
    assert [g["n"] for g in groups] == [2, 2, 2]
    assert [g["predicted"] for g in groups] == pytest.approx([0.85, 0.35, 0.15])
    assert [g["observed"] for g in groups] == pytest.approx([1.0, 0.5, 0.0])
    assert calibration_by_decile(np.array([]), np.array([])) == []


def test_bad_rate_by_band_and_histogram_edges() -> None:
    scores = np.array([350, 549, 550, 600, 699, 700, 950])
    y = np.array([1, 0, 1, 0, 0, 1, 0])
    bands = bad_rate_by_band(y, scores)
    assert [(b["band"], b["n"], b["bads"]) for b in bands] == [
        ("POOR", 2, 1), ("FAIR", 1, 1), ("GOOD", 1, 0), ("VERY_GOOD", 1, 0), ("EXCELLENT", 2, 1),
    ]
    assert bands[0]["bad_rate"] == 0.5
    empty = bad_rate_by_band(np.array([0]), np.array([400]))
    assert empty[1]["n"] == 0 and empty[1]["bad_rate"] is None
    edges, counts = score_histogram(scores)
    assert (edges[0], edges[-1], len(edges)) == (350.0, 950.0, 25)
    assert counts.sum() == len(scores)  # 950 falls in the last bar
    assert counts[-1] == 1 and counts[0] == 1


# ---------------------------------------------------------------- the report


def test_report_is_self_contained_and_has_every_section(trained: TrainResult, tmp_path: Path) -> None:
    path = write_report(trained, tmp_path / "reports" / "scorecard-0.3.1.html")
    assert path == tmp_path / "reports" / "scorecard-0.3.1.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    for reference in ("http:", "https:", "<script", "<link", " src=", "url(", "@import", "<img"):
        assert reference not in text.lower(), reference
    for section in SECTIONS:
        assert f'<section id="{section}"' in text, section
    # Every chart is a well-formed SVG document in its own right.
    svgs = re.findall(r"<svg .*?</svg>", text, flags=re.S)
    assert len(svgs) == 5
    for svg in svgs:
        ET.fromstring(svg)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_report_shows_the_models_numbers(trained: TrainResult) -> None:
    text = render_report(trained)
    m, s = trained.metrics, trained.artifact["scaling"]
    assert f"AUC {m['auc']:.3f}" in text  # on the ROC chart
    for label, value in (("AUC", m["auc"]), ("Gini", m["gini"]), ("KS", m["ks"]), ("PDO", s["pdo"])):
        digits = 1 if label == "PDO" else 3
        assert re.search(rf'<div class="label">{label}</div><div class="value">{value:.{digits}f}</div>', text), label
    rows = m["n_train"] + m["n_holdout"]
    assert f'<div class="value">{rows:,}</div>' in text
    assert f"{100 * m['bad_rate']:.1f}%" in text
    assert "Scorecard <span class=\"version\">0.3.1</span>" in text
    for band in m["bad_rate_by_band"]:
        rate = "–" if band["bad_rate"] is None else f"{100 * band['bad_rate']:.1f}%"
        assert f"<td>{band['n']:,}</td>" in text and rate in text
    for feature in trained.artifact["features"]:
        assert f"<code>{feature['name']}</code>" in text
        block = text[text.index(f"<h3><code>{feature['name']}</code></h3>"):]
        block = block[: block.index("</table>")]
        bins = [*feature["bins"], *feature.get("special", []), feature["missing"]]
        points = [b["points"] for b in bins]
        shown = re.findall(r'<td class="[a-z]*">(-?\d+\.\d)</td></tr>', block)
        assert shown == [f"{p:.1f}" for p in points]
        assert f"IV {feature['iv']:.3f}" in block
    for dropped in trained.artifact["dropped"]:
        assert f"<code>{dropped['name']}</code>" in text


def test_iv_chart_has_every_feature_sorted_with_the_dropped_ones(trained: TrainResult) -> None:
    text = render_report(trained)
    section = text[text.index('<section id="iv"'): text.index('<section id="points"')]
    shown = re.findall(r"<title>([^<]+)</title>[^<]*</text>", section)
    iv = trained.metrics["iv"]  # every feature's IV, dropped ones included
    assert set(shown) == set(iv)
    assert shown == sorted(iv, key=lambda name: (-iv[name], name))
    for name in shown:
        assert f">{iv[name]:.3f}</text>" in section
    dropped = {d["name"] for d in trained.artifact["dropped"]}
    assert "noise" in dropped
    assert section.count('fill="#b8c0c9"/>') == len(dropped)  # grey bars


def test_points_table_names_categories_special_values_and_no_data(trained: TrainResult) -> None:
    text = render_report(trained)
    features = {f["name"]: f for f in trained.artifact["features"]}
    assert {"income", "tenure", "housing"} <= set(features)
    for b in features["housing"]["bins"]:  # every category is listed in its bin
        cell = re.escape(" | ".join(b["categories"]))
        assert re.search(rf'<td class="bin">{cell}( \+ other)?</td>', text), b["categories"]
    assert [s["value"] for s in features["tenure"].get("special", [])] == [-999]
    assert '<td class="bin edge">special -999</td>' in text
    assert text.count('<td class="bin edge">no data</td>') == len(features)
    assert '<td class="bin edge">&lt; ' in text and '<td class="bin edge">≥ ' in text  # numeric edges


def test_report_escapes_text_from_the_artifact(trained: TrainResult) -> None:
    text = render_report(trained)
    assert "synthetic &lt;report&gt; test table" in text
    assert "<report>" not in text


def test_rows_without_a_score_are_left_out_and_counted(trained: TrainResult) -> None:
    pd = trained.pd_holdout.copy()
    scores = trained.score_holdout.copy()
    pd[:7] = np.nan  # as score_batch marks INSUFFICIENT_DATA
    scores[:7] = 0
    text = render_report(replace(trained, pd_holdout=pd, score_holdout=scores))
    unscored = ~np.isfinite(pd)  # the 7, and any the model itself could not score
    assert f"{int((~unscored).sum()):,} scored holdout rows; {int(unscored.sum())} had too little data" in text
    goods = int((trained.y_holdout[~unscored] == 0).sum())
    assert f"goods ({goods:,})" in text


def test_malformed_holdout_is_refused(trained: TrainResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one length"):
        write_report(replace(trained, pd_holdout=trained.pd_holdout[:-1]), tmp_path / "r.html")
    with pytest.raises(ValueError, match="nothing to report"):
        render_report(replace(trained, pd_holdout=np.full(len(trained.pd_holdout), math.nan)))
    with pytest.raises(ValueError, match="both bads and goods"):
        render_report(replace(trained, y_holdout=np.zeros(len(trained.y_holdout), dtype=np.int64)))
    assert not (tmp_path / "r.html").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either
