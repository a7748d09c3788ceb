"""The point-in-time training matrix of a simulated population, made chunk by chunk
with memory flat in the population's size.

``point_in_time_matrix(simulate(n).records, simulate(n).outcomes)`` holds every
record of every subject (about 1.6 KB a record, 120 records a subject). Here the
applicants are drawn a chunk of subjects at a time (``applicants``: only the records
each had at the application time are built), the chunk's rows are computed by the
feature engine and appended to one matrix (``PointInTimeMatrixBuilder``), and the
chunk is dropped. The rows are then put in the order of ``simulate``'s outcomes (by
the time each outcome was observed, ties in subject order), so that the matrix is
the one the all-in-memory path gives, bit for bit, and so is the model trained on it.

Chunks are independent, so ``workers`` > 1 computes them in up to that many
processes (each holds one chunk at a time; the rows come back in chunk order); a
worker is started only for every four chunks or more (a small population is done
in the calling process).
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

import numpy as np
import numpy.typing as npt

from creditscore.features.engine import PointInTimeMatrix, point_in_time_matrix
from creditscore.features.training_matrix import PointInTimeMatrixBuilder
from creditscore.records.v1 import records_pb2

from . import DEFAULT_AS_OF, applicants

__all__ = ["DEFAULT_CHUNK_SUBJECTS", "simulated_training_matrix"]

#: Subjects per chunk: about 40 MB of records while one is worked on.
DEFAULT_CHUNK_SUBJECTS = 500

#: Chunks each worker should get at least, else fewer workers (or none) are started.
_MIN_CHUNKS_PER_WORKER = 4

_Chunk = tuple[PointInTimeMatrix, npt.NDArray[np.int64]]


def _chunk_rows(task: tuple[int, int, int, datetime, str]) -> _Chunk:
    """Rows of the applicants among subjects ``start`` .. ``start + count - 1``,
    and each row's sort key (the time its outcome was observed)."""
    start, count, seed, as_of, id_prefix = task
    # The chunk's work makes no reference cycles, only a great many short-lived
    # containers (a message and a few lists a record), which set off the cyclic
    # collector every 700 allocations (gc.callbacks timed 0.9 s of 4.8 s CPU at
    # 4,000 subjects; pausing it saved 5-10% of the CPU time). It is paused for the
    # chunk (reference counting still frees the chunk's garbage) and switched back
    # on after it.
    paused = gc.isenabled()
    gc.disable()
    try:
        records: list[records_pb2.Record] = []
        outcomes: list[records_pb2.Record] = []
        for applicant in applicants(count, seed=seed, as_of=as_of, id_prefix=id_prefix, start=start):
            records.extend(applicant.records)
            outcomes.append(applicant.outcome)
        keys = np.array([o.event_time.seconds for o in outcomes], dtype=np.int64)
        return point_in_time_matrix(records, outcomes), keys
    finally:
        if paused:
            gc.enable()


def simulated_training_matrix(
    n_subjects: int,
    *,
    seed: int,
    as_of: datetime = DEFAULT_AS_OF,
    id_prefix: str = "sim",
    chunk_subjects: int = DEFAULT_CHUNK_SUBJECTS,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> PointInTimeMatrix:
    """The point-in-time matrix of ``simulate(n_subjects, seed=..., as_of=...)``'s
    outcomes, equal to ``point_in_time_matrix`` of its records and outcomes, made
    ``chunk_subjects`` subjects at a time in ``workers`` processes. ``progress`` is
    told the number of subjects done after each chunk."""
    if n_subjects < 0:
        raise ValueError("n_subjects must not be negative")
    if chunk_subjects < 1 or workers < 1:
        raise ValueError("chunk_subjects and workers must be at least 1")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    tasks = [
        (start, min(chunk_subjects, n_subjects - start), seed, as_of, id_prefix)
        for start in range(0, n_subjects, chunk_subjects)
    ]
    builder = PointInTimeMatrixBuilder()
    done = 0
    for (_, count, *_rest), (matrix, keys) in zip(tasks, _run(tasks, workers), strict=True):
        builder.add_matrix(matrix, order=keys)
        done += count
        if progress is not None:
            progress(done)
    return builder.finish()


def _run(tasks: list[tuple[int, int, int, datetime, str]], workers: int) -> Iterator[_Chunk]:
    """The chunks' rows in task order, computed here or in ``workers`` processes."""
    # A worker costs an interpreter's start and imports: worth it from a few chunks each.
    workers = min(workers, len(tasks) // _MIN_CHUNKS_PER_WORKER)
    if workers <= 1:
        yield from map(_chunk_rows, tasks)
        return
    # "spawn": a fresh interpreter per worker, safe whatever threads the parent runs.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        yield from pool.map(_chunk_rows, tasks)
