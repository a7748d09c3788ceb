"""Point-in-time training matrices built chunk by chunk, with memory flat in the
population: only the matrix itself (a float64 row of 20 features per outcome) grows.

``point_in_time_matrix`` (``creditscore.features.engine``) takes every record and
every outcome at once. A population of 100,000 subjects holds about 12 million
records (about 1.6 KB each as protobuf messages); the matrix it makes is 16 MB. So
here the records come in chunks that each hold *whole subjects* (every record of
every subject named in the chunk), each chunk is turned into its rows by the very
same engine, and the rows are appended to one growing matrix
(``PointInTimeMatrixBuilder``); the chunk's records can then go.

Row order: ``point_in_time_matrix`` gives one row per outcome in the order the
outcomes were given, and the trainer's holdout split depends on that order. A
chunked source rarely sees the outcomes in that order, so every row carries a sort
key (``order``), and ``finish`` puts the rows in key order (stable: ties keep the
order they were added in). With the key of each outcome's position in the
all-at-once order, the chunked matrix equals ``point_in_time_matrix``'s row for row,
bit for bit.

    builder = PointInTimeMatrixBuilder()
    for records, outcomes, keys in chunks:          # whole subjects per chunk
        builder.add_records(records, outcomes, order=keys)
    matrix = builder.finish()

A source that streams records in no subject order (the ingest service exports
them by producer and record id) first spools them to disk, partitioned by subject
(``SubjectSpool``), and then hands the builder one partition at a time: memory
holds one partition's records, the disk all of them (about their serialized size).

A consumer that already has feature rows (say, read back from a file) appends
them with ``builder.add(X, y, application_seconds, subject_ids, order=...)``.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import PointInTimeMatrix, point_in_time_matrix
from creditscore.records.v1 import records_pb2 as _R

__all__ = ["PointInTimeMatrixBuilder", "SubjectSpool", "point_in_time_matrix_chunked"]


class PointInTimeMatrixBuilder:
    """A point-in-time matrix appended to chunk by chunk (amortized doubling of one
    float64 array), then put in key order by ``finish``."""

    def __init__(self, feature_names: Sequence[str] = FEATURE_NAMES, capacity: int = 4096) -> None:
        self.feature_names = tuple(feature_names)
        k = len(self.feature_names)
        capacity = max(1, capacity)
        self._X = np.empty((capacity, k), dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.int8)
        self._applied = np.empty(capacity, dtype=np.int64)
        self._order = np.empty(capacity, dtype=np.int64)
        self._subjects: list[str] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        application_seconds: npt.ArrayLike,
        subject_ids: Sequence[str],
        *,
        order: npt.ArrayLike | None = None,
    ) -> None:
        """Appends rows: features ``X`` (rows x features, NaN = no data), labels
        ``y`` (1 = BAD), each row's application time (epoch seconds) and subject,
        and its sort key (default: the running row number, i.e. the order added).
        Raises ValueError when the shapes disagree."""
        rows = np.asarray(X, dtype=np.float64)
        labels = np.asarray(y)
        applied = np.asarray(application_seconds, dtype=np.int64)
        m = len(subject_ids)
        if rows.ndim != 2 or rows.shape != (m, len(self.feature_names)):
            raise ValueError(f"X must be ({m}, {len(self.feature_names)}), not {rows.shape}")
        if labels.shape != (m,) or applied.shape != (m,):
            raise ValueError(f"y and application_seconds must hold {m} values each")
        if not ((labels == 0) | (labels == 1)).all():
            raise ValueError("y must hold 0 (good) and 1 (bad) only")
        keys = np.arange(self._n, self._n + m, dtype=np.int64) if order is None else np.asarray(order, np.int64)
        if keys.shape != (m,):
            raise ValueError(f"order must hold {m} keys")
        self._reserve(self._n + m)
        end = self._n + m
        self._X[self._n:end] = rows
        self._y[self._n:end] = labels
        self._applied[self._n:end] = applied
        self._order[self._n:end] = keys
        self._subjects.extend(subject_ids)
        self._n = end

    def add_matrix(self, matrix: PointInTimeMatrix, *, order: npt.ArrayLike | None = None) -> None:
        """Appends the rows of a ``PointInTimeMatrix`` (same feature names)."""
        if tuple(matrix.feature_names) != self.feature_names:
            raise ValueError("the matrix has other features than the builder")
        applied = [int(t.timestamp()) for t in matrix.application_times]
        self.add(matrix.X, matrix.y, applied, matrix.subject_ids, order=order)

    def add_records(
        self,
        records: Iterable[_R.Record],
        outcomes: Sequence[_R.Record],
        *,
        order: npt.ArrayLike | None = None,
    ) -> None:
        """Appends one row per outcome, computed by ``point_in_time_matrix`` from
        ``records``, which must hold every record of the outcomes' subjects (a
        subject split across two calls would be replayed from half its history).
        ``order``: one key per outcome."""
        self.add_matrix(point_in_time_matrix(records, outcomes), order=order)

    def finish(self) -> PointInTimeMatrix:
        """The matrix, rows sorted by their keys (ties in the order added)."""
        n = self._n
        rank = np.argsort(self._order[:n], kind="stable")
        X = self._X[:n][rank]
        applied = self._applied[:n][rank].tolist()
        subjects = self._subjects
        return PointInTimeMatrix(
            X=X,
            y=self._y[:n][rank],
            subject_ids=tuple(subjects[j] for j in rank.tolist()),
            application_times=tuple(datetime.fromtimestamp(t, UTC) for t in applied),
            feature_names=self.feature_names,
        )

    def _reserve(self, rows: int) -> None:
        capacity = len(self._y)
        if rows <= capacity:
            return
        while capacity < rows:
            capacity *= 2
        self._X = _grown(self._X, capacity)
        self._y = _grown(self._y, capacity)
        self._applied = _grown(self._applied, capacity)
        self._order = _grown(self._order, capacity)


_A = TypeVar("_A", bound=np.ndarray[Any, Any])


def _grown(array: _A, rows: int) -> _A:
    out: _A = np.empty((rows, *array.shape[1:]), dtype=array.dtype)  # type: ignore[assignment]
    out[: len(array)] = array
    return out


def point_in_time_matrix_chunked(
    chunks: Iterable[tuple[Iterable[_R.Record], Sequence[_R.Record], npt.ArrayLike | None]],
) -> PointInTimeMatrix:
    """``point_in_time_matrix`` over ``chunks`` of ``(records, outcomes, order)``,
    each holding whole subjects (see the module docstring), one chunk in memory at
    a time; ``order`` (or None: the order given) sorts the rows."""
    builder = PointInTimeMatrixBuilder()
    for records, outcomes, order in chunks:
        builder.add_records(records, outcomes, order=order)
    return builder.finish()


_HEADER = struct.Struct("<IBq")  # payload length, 1 = an outcome, the outcome's row key


class SubjectSpool:
    """Records spooled to ``partitions`` temporary files by a hash of their subject,
    so that every partition holds whole subjects; read back one partition at a time
    (``chunks``) for ``PointInTimeMatrixBuilder.add_records``. Within a partition
    the records keep the order they were added in (point-in-time replays break ties
    of event time by that order, as ``point_in_time_matrix`` does).

        with SubjectSpool() as spool:
            for position, record in enumerate(stream):
                spool.add(record, key=position)   # the key orders the outcomes' rows
            matrix = point_in_time_matrix_chunked(spool.chunks())
    """

    def __init__(self, partitions: int = 256, directory: str | Path | None = None) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._dir = tempfile.TemporaryDirectory(prefix="pit-spool-", dir=directory)
        self._paths = [Path(self._dir.name) / f"{i:04d}.bin" for i in range(partitions)]
        self._files = [open(path, "wb", buffering=1 << 16) for path in self._paths]  # noqa: SIM115
        self.records = 0
        self.outcomes = 0

    def add(self, record: _R.Record, *, key: int = 0) -> None:
        """Spools one record; a loan outcome's ``key`` sorts its row (``finish``)."""
        outcome = record.WhichOneof("body") == "loan_outcome"
        payload = record.SerializeToString()
        partition = zlib.crc32(record.subject_id.encode()) % len(self._files)
        fh = self._files[partition]
        fh.write(_HEADER.pack(len(payload), int(outcome), key if outcome else 0))
        fh.write(payload)
        if outcome:
            self.outcomes += 1
        else:
            self.records += 1

    def chunks(self) -> Iterator[tuple[list[_R.Record], list[_R.Record], list[int]]]:
        """``(records, outcomes, outcome keys)`` of one partition at a time."""
        for fh in self._files:
            fh.flush()
        for path in self._paths:
            records: list[_R.Record] = []
            outcomes: list[_R.Record] = []
            keys: list[int] = []
            data = path.read_bytes()
            at = 0
            while at < len(data):
                size, outcome, key = _HEADER.unpack_from(data, at)
                at += _HEADER.size
                record = _R.Record.FromString(data[at : at + size])
                at += size
                if outcome:
                    outcomes.append(record)
                    keys.append(key)
                else:
                    records.append(record)
            del data
            if outcomes:
                yield records, outcomes, keys

    def close(self) -> None:
        for fh in self._files:
            fh.close()
        self._dir.cleanup()

    def __enter__(self) -> SubjectSpool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
