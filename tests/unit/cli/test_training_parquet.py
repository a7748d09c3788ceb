"""Training files (Parquet): written a row group per chunk, read back exactly,
the same model trained from them as from the matrix in memory; the schema as
any Parquet reader sees it (pyarrow alone)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from creditscore.cli import main
from creditscore.cli.training_parquet import (
    Pseudonyms,
    TrainingFileError,
    TrainingParquetWriter,
    catalog_version,
    read_training_matrix,
)
from creditscore.cli.training_source import training_matrix_chunks
from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import point_in_time_matrix
from creditscore.scorecard.artifact import save_model
from creditscore.scorecard.config import TrainingConfig
from creditscore.scorecard.training import train_matrix
from creditscore.sim import simulate

SUBJECTS, SEED = 300, 5


@pytest.fixture(scope="module")
def population():
    return simulate(SUBJECTS, seed=SEED)


@pytest.fixture(scope="module")
def matrix(population):
    return point_in_time_matrix(population.records, population.outcomes)


def write(path, population, rows: int = 50, pseudonyms: Pseudonyms | None = None) -> TrainingParquetWriter:
    with TrainingParquetWriter(path, source="test", pseudonyms=pseudonyms or Pseudonyms.random()) as out:
        for chunk in training_matrix_chunks(population.records, population.outcomes, rows=rows):
            out.write(chunk)
    return out


def test_a_file_written_in_row_groups_reads_back_the_same_matrix(tmp_path, population, matrix):
    out = write(tmp_path / "t.parquet", population, rows=50)
    assert out.rows == len(matrix) > 150 and out.row_groups == -(-len(matrix) // 50)
    data = read_training_matrix(tmp_path / "t.parquet")
    assert data.row_groups == out.row_groups
    assert data.feature_names == FEATURE_NAMES
    assert np.array_equal(data.X, matrix.X, equal_nan=True)
    assert np.isnan(matrix.X).any()  # "no data" made the trip as well
    assert data.y.dtype == np.int8 and data.y.tolist() == matrix.y.tolist()


def test_the_model_trained_from_the_file_is_the_one_trained_from_memory(tmp_path, population, matrix):
    write(tmp_path / "t.parquet", population, rows=64)
    data = read_training_matrix(tmp_path / "t.parquet")
    config = TrainingConfig(version="9.9.9", description="same", seed=SEED,
                            train_time=datetime(2026, 12, 1, tzinfo=UTC))
    direct = train_matrix(matrix.X, matrix.y, list(matrix.feature_names), config)
    from_file = train_matrix(data.X, data.y, list(data.feature_names), config)
    save_model(direct.artifact, tmp_path / "direct.json")
    save_model(from_file.artifact, tmp_path / "file.json")
    assert (tmp_path / "file.json").read_bytes() == (tmp_path / "direct.json").read_bytes()


def test_the_commands_export_and_train_the_same_model_as_train_simulate(tmp_path, capsys):
    parquet, a, b = tmp_path / "t.parquet", tmp_path / "a.json", tmp_path / "b.json"
    assert main(["export-training", "--simulate", str(SUBJECTS), "--seed", str(SEED), "--out", str(parquet),
                 "--rows-per-group", "40", "--quiet"]) == 0
    assert re.search(r"wrote .*t\.parquet: \d+ rows .*, \d+ row groups", capsys.readouterr().out)
    common = ["--seed", str(SEED), "--description", "d", "--quiet"]
    assert main(["train", "--parquet", str(parquet), "--out", str(a), *common]) == 0
    assert main(["train", "--simulate", str(SUBJECTS), "--out", str(b), *common]) == 0
    from_file, direct = json.loads(a.read_text()), json.loads(b.read_text())
    from_file.pop("train_time"), direct.pop("train_time")  # the clock's second
    assert from_file == direct


def test_the_schema_as_pyarrow_alone_reads_it(tmp_path, population, matrix):
    write(tmp_path / "t.parquet", population, rows=100)
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.schema.names == ["subject_key", "application_time", "outcome", *FEATURE_NAMES]
    assert table.schema.field("subject_key").type == pa.string()
    assert table.schema.field("application_time").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("outcome").type == pa.int8()
    assert all(table.schema.field(name).type == pa.float64() for name in FEATURE_NAMES)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["creditscore.schema_version"] == "1"
    assert meta["creditscore.feature_catalog_version"] == catalog_version()
    assert json.loads(meta["creditscore.features"]) == list(FEATURE_NAMES)
    assert meta["creditscore.outcome_coding"].startswith("1 = BAD, 0 = GOOD")
    assert table.schema.field("pay_ontime_ratio_12m").metadata[b"source"] == b"DATA_SOURCE_PAYMENTS"

    rows = table.to_pylist()
    assert [r["outcome"] for r in rows] == matrix.y.tolist()
    assert [r["application_time"] for r in rows] == list(matrix.application_times)
    # No data is null (not NaN) for every reader; values exact.
    for name_index, name in enumerate(FEATURE_NAMES):
        column = [r[name] for r in rows]
        expected = matrix.X[:, name_index]
        assert [v is None for v in column] == np.isnan(expected).tolist()
        assert [v for v in column if v is not None] == expected[~np.isnan(expected)].tolist()
    # Subject ids never appear: 128-bit keys, one per subject.
    keys = [r["subject_key"] for r in rows]
    assert all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys)
    assert not set(keys) & set(matrix.subject_ids)
    assert len(set(keys)) == len(set(matrix.subject_ids))


def test_subject_keys_are_unlinkable_by_default_and_stable_under_one_key(tmp_path, population):
    def keys(name, pseudonyms=None):
        write(tmp_path / name, population, pseudonyms=pseudonyms)
        return pq.read_table(tmp_path / name, columns=["subject_key"]).column(0).to_pylist()

    first, second = keys("a.parquet"), keys("b.parquet")
    assert not set(first) & set(second)
    key = b"k" * 32
    assert keys("c.parquet", Pseudonyms.keyed(key)) == keys("d.parquet", Pseudonyms.keyed(key))


def test_a_failed_export_leaves_no_file(tmp_path, population):
    path = tmp_path / "t.parquet"
    with pytest.raises(RuntimeError), TrainingParquetWriter(path, source="t", pseudonyms=Pseudonyms.random()) as out:
        out.write(next(training_matrix_chunks(population.records, population.outcomes, rows=10)))
        raise RuntimeError("the export broke")
    assert list(tmp_path.iterdir()) == []


def test_files_of_another_catalog_or_not_parquet_are_refused(tmp_path, population, capsys):
    write(tmp_path / "t.parquet", population)
    table = pq.read_table(tmp_path / "t.parquet")
    meta = dict(table.schema.metadata)
    meta[b"creditscore.feature_catalog_version"] = b"sha256:0000000000000000"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "old.parquet")
    with pytest.raises(TrainingFileError, match="feature catalog") as info:
        read_training_matrix(tmp_path / "old.parquet")
    assert info.value.reason == "INVALID_TRAINING_FILE"
    (tmp_path / "junk.parquet").write_text("subject,outcome\n")
    with pytest.raises(TrainingFileError, match="not a Parquet file"):
        read_training_matrix(tmp_path / "junk.parquet")
    assert main(["train", "--parquet", str(tmp_path / "old.parquet"), "--out", str(tmp_path / "m.json")]) == 1
    assert "export the training data again" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_the_documented_feature_columns_are_the_catalogs():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "training-data.md").read_text()
    listed = doc.split("The feature columns, in order:", 1)[1].split("Each feature column's", 1)[0]
    assert tuple(re.findall(r"`([a-z0-9_]+)`", listed)) == FEATURE_NAMES
