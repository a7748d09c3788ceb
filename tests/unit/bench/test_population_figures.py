"""bench.population's figures and bench.population_plot's SVG, without a suite."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from bench._population import (
    PopulationRun,
    Stage,
    append_json_line,
    describe_stage,
    per_subject_bytes,
    population_result_line,
    result_figures,
    work_rate,
)
from bench.population_plot import Panel, Series, latency_series, log_ticks, render_svg, stage_series

SVG = "{http://www.w3.org/2000/svg}"


def _run(subjects: int = 1000, db: str = "sqlite", **seconds: float | None) -> PopulationRun:
    base = {"signup": 50.0, "ingest": 20.0, "delivery": 30.0, "rescore": 4.0, "expiry": None, "train": 8.0,
            "lookup": 2.0}
    base.update(seconds)
    items = {"signup": subjects, "ingest": 100 * subjects, "delivery": 90 * subjects, "rescore": subjects,
             "expiry": 0, "train": subjects // 2, "lookup": 1000}
    stages = [Stage(name, items[name], s, note="no clock" if s is None else "") for name, s in base.items()]
    stages[-1].store_bytes = {"consent_service": 4 * subjects, "feature_service": 10 * subjects}
    stages[-1].peak_rss_kb = {"consent_service": 2048, "gateway": 1536}
    return PopulationRun(subjects=subjects, db=db, records=100 * subjects, stages=stages,
                         extra={"lookup_p50_ms": 12.5, "lookup_p99_ms": 40.0})


def test_rates_are_items_over_seconds_and_a_stage_not_measured_says_so() -> None:
    figures = result_figures(_run())
    assert figures["signup_per_s"] == pytest.approx(1000 / 50)
    assert figures["ingest_records_per_s"] == pytest.approx(100_000 / 20)
    # From the first record sent to the last applied: ingest + delivery seconds.
    assert figures["e2e_records_per_s"] == pytest.approx(90_000 / 50)
    assert figures["e2e_over_ingest"] == pytest.approx((90_000 / 50) / (100_000 / 20))
    assert figures["rescore_per_s"] == pytest.approx(1000 / 4)
    assert figures["expiry_s"] == "not_measured"
    assert figures["train_s"] == 8.0
    assert figures["lookup_p99_ms"] == 40.0
    assert figures["bytes_per_subject_consent"] == 4
    assert figures["bytes_per_subject_feature"] == 10
    assert figures["peak_rss_mb_consent"] == 2
    assert figures["peak_rss_mb_gateway"] == 2


def test_a_stage_missing_or_without_time_gives_no_rate() -> None:
    run = _run(rescore=None, ingest=0.0)
    figures = result_figures(run)
    assert figures["rescore_per_s"] == "not_measured"
    assert figures["ingest_records_per_s"] == "not_measured"
    assert figures["e2e_over_ingest"] == "not_measured"
    run.stages = [s for s in run.stages if s.name != "train"]
    assert result_figures(run)["train_s"] == "not_measured"


def test_the_result_line_starts_with_the_population_and_has_every_figure_once() -> None:
    line = population_result_line(_run(subjects=3000))
    assert line.startswith("RESULT population subjects=3000 db=sqlite records=300000 signup_per_s=60 ")
    keys = [part.split("=", 1)[0] for part in line.split()[2:]]
    assert len(keys) == len(set(keys))
    assert {"ingest_records_per_s", "e2e_records_per_s", "rescore_per_s", "train_s", "lookup_p50_ms",
            "lookup_p99_ms"} <= set(keys)


def test_bytes_per_subject_and_a_stage_description() -> None:
    assert per_subject_bytes({"a": 1000, "b": 50}, 100) == {"a": 10.0, "b": 0.5}
    with pytest.raises(ValueError):
        per_subject_bytes({"a": 1}, 0)
    lines = describe_stage(Stage("ingest", 5000, 2.0, {"ingest_service": 10240}, {"ingest_service": 4000}), 100)
    assert lines[0].startswith("ingest: 5,000 records in 2.00 s = 2,500.0 records/s (20.00 s per 1k subjects)")
    assert "ingest 10 MB" in lines[1] and "ingest 40" in lines[2]
    assert describe_stage(Stage("expiry", 0, None, note="no clock"), 100) == ["expiry: not measured: no clock"]


def test_each_run_is_appended_as_one_json_line(tmp_path) -> None:
    path = tmp_path / "var" / "population.jsonl"
    append_json_line(path, _run(subjects=1000))
    append_json_line(path, _run(subjects=3000, db="postgres"))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["subjects"] for x in lines] == [1000, 3000]
    first = json.loads(lines[0])
    assert first["result"]["expiry_s"] == "not_measured"
    assert [s["name"] for s in first["stages"]][:2] == ["signup", "ingest"]


def test_log_ticks_cover_the_range_in_1_2_5_steps() -> None:
    assert log_ticks(1000, 10_000) == [1000, 2000, 5000, 10_000]
    ticks = log_ticks(3.0, 40.0)
    assert ticks[0] <= 3.0 and ticks[-1] >= 40.0
    assert ticks == [1, 2, 5, 10, 20, 50, 100]
    assert log_ticks(7.0, 7.0) == [1, 2, 5, 10]
    with pytest.raises(ValueError):
        log_ticks(0.0, 1.0)


def test_series_take_the_last_run_per_store_and_size_and_skip_what_was_not_measured() -> None:
    runs = [_run(1000).to_json(), _run(1000, signup=100.0).to_json(), _run(3000).to_json(),
            _run(1000, db="postgres").to_json()]
    series = {s.label: s for s in stage_series(runs)}
    assert series["signup (sqlite)"].points == ((1000.0, 100.0), (3000.0, 50.0 / 3000 * 1000))
    assert not series["signup (sqlite)"].dashed and series["signup (postgres)"].dashed
    assert not any(label.startswith("expiry") for label in series)
    latency = {s.label: s.points for s in latency_series(runs)}
    assert latency["lookup p99 (sqlite)"] == ((1000.0, 40.0), (3000.0, 40.0))


def test_the_svg_is_well_formed_with_a_polyline_per_series_on_log_axes() -> None:
    a = Series("a & b", ((1000.0, 10.0), (10_000.0, 100.0)), "#000")
    b = Series("c", ((1000.0, 100.0), (10_000.0, 10.0)), "#f00", dashed=True)
    svg = render_svg([Panel("cost", "subjects", "s", (a, b)), Panel("empty", "x", "y", ())], caption="N <= 10k")
    root = ET.fromstring(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert lines[1].get("stroke-dasharray") and not lines[0].get("stroke-dasharray")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "a & b" in texts and "N <= 10k" in texts and "empty: no data" in texts

    def xy(line: ET.Element) -> list[tuple[float, float]]:
        return [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]  # type: ignore[misc]

    (ax0, ay0), (ax1, ay1) = xy(lines[0])
    (bx0, by0), (bx1, by1) = xy(lines[1])
    # Log axes: the ticks run 1k..10k and 10..100, so each line spans the whole box.
    assert ax0 == bx0 and ax1 == bx1 and ax1 > ax0
    assert ay1 < ay0 and by1 > by0  # SVG y grows downward
    assert math.isclose(ay0, by1) and math.isclose(ay1, by0)


def test_a_work_rate_needs_a_window_of_several_polls() -> None:
    # 10,000 rows from the first moved (2.0 s after the trigger) to the last (6.0 s): 2,500/s.
    rate, words = work_rate(10_000, 6.0, 2.0)
    assert rate == pytest.approx(2500.0)
    assert words == "2,500 subjects/s"
    # One page done between two polls: no rate (it would be the poll's rounding, not the work).
    rate, words = work_rate(1_000, 1.6, 1.6)
    assert rate == "not_measured"
    assert "too short" in words
    assert work_rate(1_000, 2.5, 1.6)[0] == "not_measured"


def test_the_expiry_stage_has_a_rate_when_measured() -> None:
    run = _run(expiry=2.0)
    run.stages[4].items = 1000
    figures = result_figures(run)
    assert figures["expiry_per_s"] == pytest.approx(500.0)
    assert figures["expiry_s"] == pytest.approx(2.0)
