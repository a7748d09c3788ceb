"""Analysts' tables: train a scorecard from any CSV with a target column, and score a
CSV with a scorecard (``creditscore train --csv`` and ``creditscore score``).

Stdlib ``csv`` and numpy; no gRPC. The rules:

- The file is UTF-8 (a byte-order mark is ignored), comma-separated, with a header
  row naming every column once; every row has as many fields as the header; blank
  lines are skipped.
- Values are stripped of surrounding spaces. An empty value, ``NA``, ``NaN`` or
  ``null`` (any case) is missing.
- A column is numeric when every value that is not missing parses as a finite
  number (``float``), else categorical (its values are categories, as text).
  A numeric column holding an infinity is an error.
- Columns named ``row_id`` or ``id`` (any case) are identifiers: never features,
  always kept in the scored output.
- The target: with ``bad_value``, the rows holding exactly that value are bad and
  every other value is good. Without it, the target must hold exactly two distinct
  values of which one is ``1``, ``bad``, ``yes`` or ``true`` (any case; numerically
  1 when the values are 0 and 1 written as numbers, e.g. ``1.0``): that one is bad.
  A missing target, one class only, or two values none of which says bad are
  errors that say what to do.
- Every other column is a feature (``FeatureSpec.for_column``: direction auto,
  codes from the column name, made unique by a numeric suffix when two names give
  the same code); ``special_values`` apply to every numeric feature.
- Scoring writes every input row with its original text, plus ``score``, ``band``,
  ``probability_of_bad``, ``reasons`` (codes joined by ``;``) and ``state``
  (``SCORED`` or ``INSUFFICIENT_DATA``, whose score, band and probability are
  empty). A model feature absent from the table is "no data" for every row (and
  said so on stderr); a value of a numeric model feature that is not a number is
  an error naming the column and the row.

Every problem is a ``TabularError`` (an ``InvalidArgument`` naming the field: the
file, a column, ``target`` or ``bad_value``); the command prints it without a
traceback.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .binning import CATEGORICAL, NUMERIC, FeatureSpec
from .errors import InputError, Problem
from .model import BatchScores, Scorecard, band_for

__all__ = [
    "BAD_VALUES",
    "MISSING_VALUES",
    "OUTPUT_COLUMNS",
    "ScoredFile",
    "Table",
    "TabularError",
    "TrainingTable",
    "infer_column",
    "is_identifier",
    "missing_mask",
    "parse_target",
    "read_csv",
    "score_csv",
    "scoring_columns",
    "training_table",
    "write_scored_csv",
]

MISSING_VALUES = frozenset({"", "na", "nan", "null"})  # compared in lower case
BAD_VALUES = frozenset({"1", "bad", "yes", "true"})  # compared in lower case
IDENTIFIERS = frozenset({"row_id", "id"})  # compared in lower case
OUTPUT_COLUMNS = ("score", "band", "probability_of_bad", "reasons", "state")
_CHUNK = 65_536


class TabularError(InputError):
    """A table that cannot be used as asked; ``field`` says where (the file, a
    column, ``target``, ``bad_value``)."""

    reason = "INVALID_TABLE"

    def __init__(self, message: str, field: str = "csv") -> None:
        super().__init__(message, [Problem(field, message)])
        self.field = field


@dataclass(frozen=True)
class Table:
    """A CSV read into columns of stripped text (numpy str arrays, one per header
    name, in header order)."""

    name: str  # the file's name, for messages
    header: tuple[str, ...]
    columns: dict[str, np.ndarray]
    n_rows: int


def is_identifier(name: str) -> bool:
    """Whether a column is an identifier (``row_id`` or ``id``, any case)."""
    return name.strip().lower() in IDENTIFIERS


def _rows(handle: Any) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank row of an open CSV file."""
    reader = csv.reader(handle)
    for row in reader:
        if row and not (len(row) == 1 and row[0].strip() == ""):
            yield reader.line_num, row


def read_csv(path: str | Path) -> Table:
    """Reads a CSV (see the module docstring) into columns of stripped text."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise TabularError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    with handle:
        rows = _rows(handle)
        try:
            first = next(rows, None)
            if first is None:
                raise TabularError(f"{path.name} is empty: a header row is needed")
            header = tuple(name.strip() for name in first[1])
            seen: set[str] = set()
            for i, name in enumerate(header):
                if not name:
                    raise TabularError(f"{path.name}: column {i + 1} of the header has no name")
                if name in seen:
                    raise TabularError(f"{path.name}: the header names column {name!r} twice")
                seen.add(name)
            chunks: list[list[np.ndarray]] = [[] for _ in header]
            chunk: list[list[str]] = []
            n_rows = 0
            for line, row in rows:
                if len(row) != len(header):
                    raise TabularError(
                        f"{path.name}, line {line}: {len(row)} fields, the header has {len(header)}"
                    )
                chunk.append(row)
                if len(chunk) == _CHUNK:
                    n_rows += _flush(chunk, chunks)
            n_rows += _flush(chunk, chunks)
        except UnicodeDecodeError:
            raise TabularError(f"{path.name} is not UTF-8 text") from None
        except csv.Error as exc:
            raise TabularError(f"{path.name}: not a valid CSV ({exc})") from None
    if n_rows == 0:
        raise TabularError(f"{path.name} has a header but no rows")
    columns = {
        name: np.strings.strip(np.concatenate(parts)) for name, parts in zip(header, chunks, strict=True)
    }
    return Table(path.name, header, columns, n_rows)


def _flush(chunk: list[list[str]], chunks: list[list[np.ndarray]]) -> int:
    n = len(chunk)
    if n:
        for parts, values in zip(chunks, zip(*chunk, strict=True), strict=True):
            parts.append(np.array(values, dtype=str))
        chunk.clear()
    return n


def missing_mask(text: np.ndarray) -> np.ndarray:
    """Where a column of stripped text is missing ("", NA, NaN, null; any case)."""
    return np.isin(np.strings.lower(text), sorted(MISSING_VALUES))


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def infer_column(text: np.ndarray, name: str = "column") -> tuple[str, np.ndarray]:
    """``(kind, values)`` of a column of stripped text: ``NUMERIC`` with float64
    (NaN = missing) when every present value is a number, else ``CATEGORICAL`` with
    an object array of str (None = missing)."""
    missing = missing_mask(text)
    try:
        values = np.where(missing, "nan", text).astype(np.float64)
    except ValueError:
        categories = text.astype(object)
        categories[missing] = None
        return CATEGORICAL, categories
    infinite = np.isinf(values)
    if infinite.any():
        row = _first_row(infinite)
        raise TabularError(f"column {name!r}, data row {row}: {str(text[row - 1])!r} is not a finite number", name)
    return NUMERIC, values


def parse_target(
    text: np.ndarray, *, column: str, bad_value: str | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(y, the values that mean bad)`` of the target column (module docstring:
    the rules); ``y`` is int8, 1 = bad."""
    missing = missing_mask(text)
    if missing.any():
        raise TabularError(
            f"the target column {column!r} is empty on {int(missing.sum())} rows "
            f"(first: data row {_first_row(missing)}); every row needs an outcome",
            "target",
        )
    distinct = [str(v) for v in np.unique(text)]
    shown = ", ".join(repr(v) for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
    if bad_value is not None:
        bad_value = bad_value.strip()
        if bad_value not in distinct:
            raise TabularError(f"--bad-value {bad_value!r} does not occur in {column!r} (values: {shown})", "bad_value")
        if len(distinct) < 2:
            raise TabularError(f"every row of {column!r} is {bad_value!r}: training needs bads and goods", "target")
        return (text == bad_value).astype(np.int8), (bad_value,)
    if len(distinct) < 2:
        raise TabularError(
            f"every row of {column!r} is {distinct[0]!r}: training needs both bads and goods", "target"
        )
    if len(distinct) > 2:
        raise TabularError(
            f"the target column {column!r} has {len(distinct)} distinct values ({shown}); "
            "a target has two, or name the one that means bad with --bad-value",
            "target",
        )
    bad = [v for v in distinct if v.lower() in BAD_VALUES]
    if not bad:
        try:
            numbers = {float(v) for v in distinct}
        except ValueError:
            numbers = set()
        if numbers == {0.0, 1.0}:
            bad = [v for v in distinct if float(v) == 1.0]
    if len(bad) != 1:
        why = "both mean bad" if len(bad) == 2 else "neither is one of 1, bad, yes, true"
        raise TabularError(
            f"the target column {column!r} holds {shown}: {why}; say which value means bad with --bad-value",
            "bad_value",
        )
    return (text == bad[0]).astype(np.int8), (bad[0],)


@dataclass(frozen=True)
class TrainingTable:
    """What ``train_table`` needs from a table, and what was made of it."""

    columns: dict[str, np.ndarray]
    y: np.ndarray
    specs: tuple[FeatureSpec, ...]
    target: str
    bad_labels: tuple[str, ...]
    identifiers: tuple[str, ...]


def training_table(
    table: Table, *, target: str, bad_value: str | None = None, special_values: Sequence[float] = ()
) -> TrainingTable:
    """The features, outcomes and specs of a table (module docstring: the rules)."""
    if target not in table.columns:
        shown = ", ".join(repr(c) for c in table.header[:12]) + (", ..." if len(table.header) > 12 else "")
        raise TabularError(f"{table.name} has no column {target!r} (columns: {shown})", "target")
    y, bad_labels = parse_target(table.columns[target], column=target, bad_value=bad_value)
    identifiers = tuple(c for c in table.header if c != target and is_identifier(c))
    columns: dict[str, np.ndarray] = {}
    specs: list[FeatureSpec] = []
    codes: set[str] = set()
    for name in table.header:
        if name == target or name in identifiers:
            continue
        kind, values = infer_column(table.columns[name], name)
        spec = FeatureSpec.for_column(name, kind)
        code, suffix = spec.reason_code, 2
        while code in codes:
            code, suffix = f"{spec.reason_code}_{suffix}", suffix + 1
        codes.add(code)
        spec = replace(
            spec,
            reason_code=code,
            missing_reason_code=f"{code}_NO_DATA",
            special_values=tuple(special_values) if kind == NUMERIC else (),
        )
        columns[name] = values
        specs.append(spec)
    if not specs:
        raise TabularError(
            f"{table.name} has no feature columns besides the target and identifiers "
            f"({', '.join(identifiers) or 'none'})"
        )
    return TrainingTable(columns, y, tuple(specs), target, bad_labels, identifiers)


def scoring_columns(table: Table, card: Scorecard) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """``(columns for Scorecard.score_columns, model features absent from the
    table)``: numeric model features parsed as numbers (an error names the first
    value that is not one), categorical ones as text."""
    columns: dict[str, np.ndarray] = {}
    absent = []
    for name in card.features:
        text = table.columns.get(name)
        if text is None:
            absent.append(name)
            continue
        missing = missing_mask(text)
        if card.kinds[name] == NUMERIC:
            try:
                values = np.where(missing, "nan", text).astype(np.float64)
            except ValueError:
                bad = np.zeros(len(text), dtype=bool)
                for i, value in enumerate(text.tolist()):
                    if not missing[i]:
                        try:
                            float(value)
                        except ValueError:
                            bad[i] = True
                            break
                row = _first_row(bad)
                raise TabularError(
                    f"column {name!r}, data row {row}: {str(text[row - 1])!r} is not a number "
                    "(the model's feature is numeric)", name,
                ) from None
            if np.isinf(values).any():
                row = _first_row(np.isinf(values))
                raise TabularError(
                    f"column {name!r}, data row {row}: {str(text[row - 1])!r} is not a finite number", name
                )
        else:
            values = text.astype(object)
            values[missing] = None
        columns[name] = values
    return columns, tuple(absent)


def write_scored_csv(source: str | Path, out: str | Path, batch: BatchScores) -> int:
    """Writes every row of ``source`` (re-read, so its text is kept exactly) with
    the ``OUTPUT_COLUMNS`` of its score; returns the rows written."""
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise TabularError("the output file must not be the input file", "out")
    codes = batch.reason_codes() or [()] * len(batch.scores)
    scores = batch.scores.tolist()
    pds = batch.pd.tolist()
    insufficient = batch.insufficient.tolist()
    written = 0
    with source.open(encoding="utf-8-sig", newline="") as handle, out.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink)
        rows = _rows(handle)
        _, header = next(rows)
        clash = sorted(set(OUTPUT_COLUMNS) & {name.strip() for name in header})
        if clash:
            raise TabularError(
                f"{source.name} already has column(s) {', '.join(clash)} that scoring adds; rename them", "csv"
            )
        writer.writerow([*header, *OUTPUT_COLUMNS])
        for i, (_, row) in enumerate(rows):
            if insufficient[i]:
                writer.writerow([*row, "", "", "", "", "INSUFFICIENT_DATA"])
            else:
                score = scores[i]
                writer.writerow(
                    [*row, score, band_for(score).value, f"{pds[i]:.6f}", ";".join(codes[i]), "SCORED"]
                )
            written += 1
    if written != len(scores):
        raise TabularError(f"{source.name} changed while it was scored ({written} rows, {len(scores)} scored)")
    return written


@dataclass(frozen=True)
class ScoredFile:
    """What ``score_csv`` did: rows written, how many had too little data, the
    model features the table lacked, the mean score of the scored rows."""

    rows: int
    insufficient: int
    absent: tuple[str, ...]
    mean_score: float | None


def score_csv(card: Scorecard, source: str | Path, out: str | Path) -> ScoredFile:
    """Scores every row of the CSV ``source`` with ``card`` and writes ``out``."""
    table = read_csv(source)
    clash = sorted(set(OUTPUT_COLUMNS) & set(table.header))
    if clash:
        raise TabularError(f"{table.name} already has column(s) {', '.join(clash)} that scoring adds; rename them")
    columns, absent = scoring_columns(table, card)
    batch = card.score_columns(columns, reasons=True, n_rows=table.n_rows)
    rows = write_scored_csv(source, out, batch)
    scored = batch.scores[~batch.insufficient]
    return ScoredFile(rows, int(batch.insufficient.sum()), absent, float(scored.mean()) if scored.size else None)
