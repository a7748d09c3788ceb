"""The point-in-time training matrix as a Parquet file, for the analysts' tools
(pandas, polars, DuckDB, Spark) and for ``creditscore train --parquet``.

    with TrainingParquetWriter(path, source="...", pseudonyms=Pseudonyms.random()) as out:
        for chunk in chunks:          # PointInTimeMatrix pieces, in row order
            out.write(chunk)          # one row group each, written at once
    data = read_training_matrix(path) # row group by row group into numpy

Schema (version 1; ``docs/training-data.md`` is the reference):

- ``subject_key`` string: a pseudonym of the subject id (HMAC-SHA256, 32 hex
  characters), never the id itself;
- ``application_time`` timestamp (milliseconds, UTC; whole seconds: Parquet has no
  coarser unit): the as-of time of the row's features, the loan application's;
- ``outcome`` int8: 1 = BAD, 0 = GOOD;
- one float64 column per feature of ``creditscore.features.catalog``, in catalog
  order; null = no data.

The file's key-value metadata (``creditscore.*``) holds the schema version, the
feature catalog's version, the feature names in order, the outcome coding, how
the subject key was made and where the rows came from. A file is written under a
temporary name and renamed into place when complete: a failed export leaves none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from creditscore.common.v1 import common_pb2
from creditscore.features.catalog import CATALOG, FEATURE_NAMES
from creditscore.features.engine import PointInTimeMatrix
from creditscore.scorecard.errors import InputError

__all__ = [
    "OUTCOME_COLUMN",
    "SCHEMA_VERSION",
    "SUBJECT_COLUMN",
    "TIME_COLUMN",
    "Pseudonyms",
    "TrainingFile",
    "TrainingFileError",
    "TrainingParquetWriter",
    "catalog_version",
    "read_training_matrix",
    "training_schema",
]

SCHEMA_VERSION = "1"
SUBJECT_COLUMN = "subject_key"
TIME_COLUMN = "application_time"
OUTCOME_COLUMN = "outcome"
OUTCOME_CODING = "1 = BAD, 0 = GOOD (the loan outcome's label)"

_META = "creditscore."


class TrainingFileError(InputError):
    """A file that is not a training matrix this build can read."""

    reason = "INVALID_TRAINING_FILE"


def catalog_version() -> str:
    """The feature catalog's version: a fingerprint of what a column means (each
    feature's name, source, window and direction, in order). It changes whenever
    the catalog does, so a file is never read against another catalog."""
    facts = [[f.name, f.source, f.window_months, f.direction] for f in CATALOG]
    return "sha256:" + hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


class Pseudonyms:
    """Subject id -> ``subject_key``: HMAC-SHA256 under a key, 128 bits as hex.
    ``random()``: a key drawn for one export and never kept, so the file cannot be
    linked back to subjects, nor to another export; ``keyed(key)``: the operator's
    key, so that exports made with it share their keys (and whoever holds it can
    link them back)."""

    def __init__(self, key: bytes, description: str) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key has at least 16 bytes")
        self._key = key
        self.description = description

    @classmethod
    def random(cls) -> Pseudonyms:
        return cls(secrets.token_bytes(32), "HMAC-SHA256 of the subject id under a random key drawn for this "
                   "export and not kept (unlinkable)")

    @classmethod
    def keyed(cls, key: bytes) -> Pseudonyms:
        return cls(key, "HMAC-SHA256 of the subject id under the operator's pseudonym key")

    def __call__(self, subject_id: str) -> str:
        return hmac.new(self._key, subject_id.encode(), hashlib.sha256).hexdigest()[:32]


def training_schema(metadata: dict[str, str] | None = None) -> Any:
    """The ``pyarrow.Schema`` of a training file (version ``SCHEMA_VERSION``)."""
    fields = [
        pa.field(SUBJECT_COLUMN, pa.string(), nullable=False),
        pa.field(TIME_COLUMN, pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field(OUTCOME_COLUMN, pa.int8(), nullable=False),
    ]
    for feature in CATALOG:
        fields.append(pa.field(feature.name, pa.float64(), nullable=True, metadata={
            "description": feature.description,
            "source": common_pb2.DataSource.Name(feature.source),  # type: ignore[arg-type]
            "direction": f"{feature.direction:+d}",
        }))
    return pa.schema(fields, metadata=metadata)


def _file_metadata(source: str, pseudonyms: Pseudonyms) -> dict[str, str]:
    return {
        _META + "schema_version": SCHEMA_VERSION,
        _META + "feature_catalog_version": catalog_version(),
        _META + "features": json.dumps(list(FEATURE_NAMES)),
        _META + "outcome_coding": OUTCOME_CODING,
        _META + "subject_key": pseudonyms.description,
        _META + "source": source,
        _META + "created_time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


class TrainingParquetWriter:
    """Writes a training file one row group per ``write``: memory holds one chunk.
    The file appears at ``path`` only when closed without an error."""

    def __init__(self, path: str | Path, *, source: str, pseudonyms: Pseudonyms, compression: str = "zstd") -> None:
        self.path = Path(path)
        self.rows = 0
        self.row_groups = 0
        self._pseudonyms = pseudonyms
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._schema = training_schema(_file_metadata(source, pseudonyms))
        self._writer: Any = pq.ParquetWriter(str(self._partial), self._schema, compression=compression)

    def write(self, chunk: PointInTimeMatrix) -> None:
        """Appends ``chunk``'s rows as one row group (none when it is empty)."""
        if tuple(chunk.feature_names) != FEATURE_NAMES:
            raise ValueError("the chunk's features are not the catalog's, in its order")
        n = len(chunk)
        if n == 0:
            return
        columns = [
            pa.array([self._pseudonyms(s) for s in chunk.subject_ids], pa.string()),
            pa.array([int(t.timestamp()) * 1000 for t in chunk.application_times], pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")),
            pa.array(np.asarray(chunk.y, dtype=np.int8), pa.int8()),
        ]
        X = np.asarray(chunk.X, dtype=np.float64)
        columns += [pa.array(X[:, j], pa.float64(), from_pandas=True) for j in range(X.shape[1])]
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema), row_group_size=n)
        self.rows += n
        self.row_groups += 1

    def close(self) -> Path:
        self._writer.close()
        os.replace(self._partial, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> TrainingParquetWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


@dataclass(frozen=True)
class TrainingFile:
    """A training file read back: ``X`` (n x features, NaN = no data), ``y``
    (int8, 1 = BAD), the feature names in column order, and the file's
    ``creditscore.*`` metadata (without the prefix)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    metadata: dict[str, str]
    row_groups: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def read_training_matrix(path: str | Path) -> TrainingFile:
    """Reads a training file row group by row group into preallocated numpy
    arrays (memory: the matrix, plus one row group). Raises ``TrainingFileError``
    for a file that is not Parquet, not of this schema version, or made with
    another feature catalog."""
    try:
        parquet: Any = pq.ParquetFile(str(path))
    except (pa.ArrowException, ValueError) as exc:
        raise TrainingFileError(f"{path}: not a Parquet file ({exc})") from None
    raw = parquet.schema_arrow.metadata or {}
    metadata = {k.decode()[len(_META):]: v.decode() for k, v in raw.items() if k.decode().startswith(_META)}
    where = f"{path}"
    if metadata.get("schema_version") != SCHEMA_VERSION:
        raise TrainingFileError(
            f"{where}: not a creditscore training file of schema version {SCHEMA_VERSION} "
            f"(creditscore.schema_version is {metadata.get('schema_version')!r})")
    if metadata.get("feature_catalog_version") != catalog_version():
        raise TrainingFileError(
            f"{where}: made with feature catalog {metadata.get('feature_catalog_version')!r}, this build has "
            f"{catalog_version()!r}; export the training data again with this build")
    names = tuple(json.loads(metadata.get("features", "[]")))
    expected = (SUBJECT_COLUMN, TIME_COLUMN, OUTCOME_COLUMN, *FEATURE_NAMES)
    if names != FEATURE_NAMES or tuple(parquet.schema_arrow.names) != expected:
        raise TrainingFileError(f"{where}: its columns are not this schema's ({', '.join(expected)})")
    n = int(parquet.metadata.num_rows)
    X = np.empty((n, len(names)), dtype=np.float64)
    y = np.empty(n, dtype=np.int8)
    at = 0
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=[OUTCOME_COLUMN, *names])
        rows = int(table.num_rows)
        y[at:at + rows] = table.column(0).to_numpy()
        for j in range(len(names)):
            X[at:at + rows, j] = table.column(j + 1).to_numpy(zero_copy_only=False)
        at += rows
    if at != n:
        raise TrainingFileError(f"{where}: its row groups hold {at} rows, its footer says {n}")
    return TrainingFile(X=X, y=y, feature_names=names, metadata=metadata, row_groups=int(parquet.num_row_groups))
