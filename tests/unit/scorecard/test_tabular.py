"""Analysts' CSV tables: reading, type inference, identifier columns, the target and
--bad-value, clear errors; and ``creditscore train --csv`` then ``creditscore score``
end to end on a small generated table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from creditscore.cli import main as cli
from creditscore.scorecard.binning import CATEGORICAL, NUMERIC
from creditscore.scorecard.model import Scorecard
from creditscore.scorecard.tabular import (
    OUTPUT_COLUMNS,
    TabularError,
    infer_column,
    parse_target,
    read_csv,
    scoring_columns,
    training_table,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_infer_and_identifiers(tmp_path):
    path = write(tmp_path / "t.csv", "\ufeffID, age ,city,income,bad\n"
                 "a1, 31 ,Lyon,1200.5,no\n"
                 "a2,NA,Nice,,yes\n"
                 "\n"
                 "a3,45,,null,no\n")
    table = read_csv(path)
    assert table.header == ("ID", "age", "city", "income", "bad") and table.n_rows == 3
    data = training_table(table, target="bad")
    assert data.identifiers == ("ID",) and [s.name for s in data.specs] == ["age", "city", "income"]
    assert [s.kind for s in data.specs] == [NUMERIC, CATEGORICAL, NUMERIC]
    assert np.array_equal(data.columns["age"], [31.0, np.nan, 45.0], equal_nan=True)
    assert data.columns["city"].tolist() == ["Lyon", "Nice", None]
    assert np.array_equal(data.columns["income"], [1200.5, np.nan, np.nan], equal_nan=True)
    assert data.y.tolist() == [0, 1, 0] and data.bad_labels == ("yes",)
    assert data.specs[1].reason_code == "CITY" and data.specs[1].missing_text == "city: no data"


def test_a_column_with_one_word_among_numbers_is_categorical():
    kind, values = infer_column(np.array(["1", "2", "many", "NaN"]))
    assert kind == CATEGORICAL and values.tolist() == ["1", "2", "many", None]
    kind, values = infer_column(np.array(["-999", "1e3", ".5", "Null"]))
    assert kind == NUMERIC and np.array_equal(values, [-999.0, 1000.0, 0.5, np.nan], equal_nan=True)
    with pytest.raises(TabularError, match="data row 2"):
        infer_column(np.array(["1", "inf"]), "x")


@pytest.mark.parametrize(
    ("values", "bad_value", "expected", "labels"),
    [
        (["good", "bad", "BAD"], None, None, None),  # three distinct values: an error
        (["good", "bad", "good"], None, [0, 1, 0], ("bad",)),
        (["0", "1", "1"], None, [0, 1, 1], ("1",)),
        (["0.0", "1.0", "0.0"], None, [0, 1, 0], ("1.0",)),
        (["False", "True"], None, [0, 1], ("True",)),
        (["paid", "default", "paid"], "default", [0, 1, 0], ("default",)),
        (["a", "b", "c"], "c", [0, 0, 1], ("c",)),
    ],
)
def test_the_target_and_the_bad_value(values, bad_value, expected, labels):
    text = np.array(values)
    if expected is None:
        with pytest.raises(TabularError, match="--bad-value"):
            parse_target(text, column="t", bad_value=bad_value)
        return
    y, bad = parse_target(text, column="t", bad_value=bad_value)
    assert y.tolist() == expected and bad == labels


@pytest.mark.parametrize(
    ("values", "bad_value", "message", "field"),
    [
        (["paid", "default"], None, "say which value means bad with --bad-value", "bad_value"),
        (["yes", "yes"], None, "needs both bads and goods", "target"),
        (["0", ""], None, "empty on 1 rows", "target"),
        (["paid", "default"], "late", "does not occur", "bad_value"),
        (["1", "yes"], None, "both mean bad", "bad_value"),
    ],
)
def test_target_errors_say_what_to_do(values, bad_value, message, field):
    with pytest.raises(TabularError, match=message) as info:
        parse_target(np.array(values), column="t", bad_value=bad_value)
    assert info.value.field == field and info.value.violations[0].field == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,b\n", "no rows"),
        ("a,a\n1,2\n", "twice"),
        ("a,,b\n1,2,3\n", "no name"),
        ("a,b\n1,2\n3\n", "line 3: 1 fields"),
    ],
)
def test_malformed_files_are_refused(tmp_path, text, message):
    with pytest.raises(TabularError, match=message):
        read_csv(write(tmp_path / "t.csv", text))


def test_unknown_target_and_no_features(tmp_path):
    table = read_csv(write(tmp_path / "t.csv", "id,row_id,y\n1,2,0\n3,4,1\n"))
    with pytest.raises(TabularError, match="no column 'target'") as info:
        training_table(table, target="target")
    assert info.value.field == "target"
    with pytest.raises(TabularError, match="no feature columns"):
        training_table(table, target="y")


def generated_csv(path: Path, n: int, seed: int) -> Path:
    """Applicants with an id, an age, an income (sometimes missing or -999), a
    housing category and a yes/no default, driven by a known logistic model."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 75, n)
    income = np.round(rng.lognormal(10, 0.5, n), 2)
    housing = rng.choice(["own", "rent", "family"], n, p=[0.5, 0.35, 0.15])
    logit = -1.6 - 0.04 * (age - 40) - 1.0 * np.log(income / 22000) + np.where(housing == "rent", 0.8, 0.0)
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["row_id", "age", "income", "housing", "default"])
        for i in range(n):
            shown = "" if rng.random() < 0.05 else ("-999" if rng.random() < 0.07 else income[i])
            out.writerow([f"r{i}", age[i], shown, housing[i], "yes" if default[i] else "no"])
    return path


def test_train_then_score_a_csv_end_to_end(tmp_path, capsys):
    source = generated_csv(tmp_path / "applicants.csv", 3000, seed=4)
    model = tmp_path / "scorecard-1.2.0.json"
    report = tmp_path / "model.html"
    assert cli(["train", "--csv", str(source), "--target", "default", "--out", str(model), "--version", "1.2.0",
                "--special-values", "-999,-1", "--quiet", "--report", str(report)]) in (0, 1)
    printed = capsys.readouterr()
    assert "3000 rows" in printed.out and "identifiers not used: row_id" in printed.out
    assert "AUC" in printed.out and str(model) in printed.out
    assert report.exists() or "REPORT NOT BUILT" in printed.err  # loud when the report module is missing
    card = Scorecard.load(model)
    artifact = json.loads(model.read_text())
    assert card.version == "1.2.0" and artifact["format"] == "creditscore.scorecard/2"
    assert "applicants.csv" in card.description and str(tmp_path) not in card.description
    assert {"age", "income", "housing"} <= set(card.features) and "row_id" not in card.features
    income = next(f for f in artifact["features"] if f["name"] == "income")
    assert [s["value"] for s in income["special"]] == [-999.0]
    assert income["missing"]["special_values"] == [-1.0]  # declared, never seen: scored as no data
    assert card.metrics["auc"] > 0.65

    scored = tmp_path / "scored.csv"
    assert cli(["score", "--model", str(model), "--csv", str(source), "--out", str(scored)]) == 0
    assert "scored 3000 rows" in capsys.readouterr().out
    with source.open(newline="") as a, scored.open(newline="") as b:
        original, result = list(csv.reader(a)), list(csv.reader(b))
    assert result[0] == original[0] + list(OUTPUT_COLUMNS)
    assert len(result) == len(original)
    column = {name: i for i, name in enumerate(result[0])}
    table = read_csv(source)
    columns, absent = scoring_columns(table, card)
    batch = card.score_columns(columns)
    assert absent == ()
    for i, (before, after) in enumerate(zip(original[1:], result[1:], strict=False)):
        assert after[: len(before)] == before  # every original field, as written
        assert after[column["state"]] == "SCORED" and int(after[column["score"]]) == batch.scores[i]
        assert float(after[column["probability_of_bad"]]) == pytest.approx(batch.pd[i], abs=1e-6)
        assert after[column["reasons"]] == ";".join(batch.reason_codes_of(i))
        assert after[column["band"]] in {"POOR", "FAIR", "GOOD", "VERY_GOOD", "EXCELLENT"}
    assert any(";" in row[column["reasons"]] for row in result[1:])


def test_score_writes_insufficient_rows_with_an_empty_score(tmp_path, capsys):
    source = generated_csv(tmp_path / "applicants.csv", 1500, seed=6)
    model = tmp_path / "scorecard-1.0.0.json"
    assert cli(["train", "--csv", str(source), "--target", "default", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    features = Scorecard.load(model).features
    sparse = write(tmp_path / "sparse.csv", "id,age,housing,extra\nx1,,,7\nx2,50,own,8\n")
    out = tmp_path / "out.csv"
    assert cli(["score", "--model", str(model), "--csv", str(sparse), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    if "income" in features:
        assert "no column for income" in printed.err
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["state"] == "INSUFFICIENT_DATA" and rows[0]["score"] == rows[0]["band"] == ""
    assert rows[0]["probability_of_bad"] == rows[0]["reasons"] == "" and rows[0]["extra"] == "7"
    # An error is a message, not a traceback.
    bad = write(tmp_path / "bad.csv", "id,age\nx1,old\n")
    assert cli(["score", "--model", str(model), "--csv", str(bad), "--out", str(out)]) == 1
    assert "column 'age', data row 1: 'old' is not a number" in capsys.readouterr().err
    assert cli(["train", "--csv", str(source), "--target", "nope", "--out", str(tmp_path / "m.json")]) == 1
    assert "has no column 'nope'" in capsys.readouterr().err
