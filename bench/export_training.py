"""Training export: what ``IngestService.ExportTrainingRecords`` costs as the caller's
``chunk_size`` shrinks.

``python -m bench.export_training [--quick] [--subjects N] [--chunk-sizes 1,50,0,1000]``

A simulated population (``creditscore.sim``) is enrolled in a real consent service
(``python -m consent_service``, its own SQLite file): every subject consents to
credit scoring for the scoring sources and to model development for loan outcomes;
every subject but each fourth also to model development for every scoring source,
so the export leaves records out. Every record is ingested into a real ingest
service (``python -m ingest_service``, SQLite, ``OUTBOX_DISPATCH=false``).

Then, after one untimed export (the store's pages cached alike for every chunk
size), for each chunk size the whole export is streamed over gRPC from a fresh
channel and timed from the call to its last message. Every answer is checked: the
records, in order, must be exactly the stored records consented to for model
development in the export's order (subject, producer, record id), byte for byte; no message may hold
more records than the chunk size gives (a chunk size below 100 is served as 100);
the skipped counts must add up to the records left out.
The first failure stops the run without a figure. Figures are the median of
``--repeat`` runs; the ratios are each chunk size's time against the default
chunk size's (0, 500 records a message) in the same run. Last, ``creditscore
export-training`` writes the Parquet training file from the same service, as its
own process: its time, its peak memory (flat in the population: it holds one
subject's records and one row group) and every row checked against the matrix of
the consented records built in memory. The services and the client share this
machine's CPUs. Ends with one ``RESULT export_training ...`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench import _common
from bench._common import Service, code_version, describe_machine, result_line
from creditscore.cli.training_parquet import Pseudonyms, read_training_matrix
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.features.catalog import SOURCE_OF_BODY
from creditscore.features.engine import point_in_time_matrix
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import create_channel
from creditscore.sim import Population, simulate
from ingest_service.ingestion import DEFAULT_EXPORT_CHUNK, MIN_EXPORT_CHUNK

BATCH = 1000
SCORING_SOURCES = (common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_PAYMENTS,
                   common_pb2.DATA_SOURCE_IDENTITY, common_pb2.DATA_SOURCE_EXTERNAL)


async def start_service(package: str, env: dict[str, str], log: Path) -> Service:
    # Tokens off: the figure is the export's own cost (tokens are timed with lookups).
    return await _common.start_service(package, {"OTEL_SDK_DISABLED": "true", **env}, log)


def developing(subject_index: int) -> bool:
    """Whether the subject consents to model development for the scoring sources."""
    return subject_index % 4 != 3


async def enroll(consent_addr: str, subject_ids: Sequence[str]) -> None:
    channel = create_channel(consent_addr)
    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    sem = asyncio.Semaphore(16)

    async def one(index: int, sid: str) -> None:
        grants = [(s, common_pb2.PURPOSE_CREDIT_SCORING) for s in SCORING_SOURCES]
        grants.append((common_pb2.DATA_SOURCE_OUTCOMES, common_pb2.PURPOSE_MODEL_DEVELOPMENT))
        if developing(index):
            grants += [(s, common_pb2.PURPOSE_MODEL_DEVELOPMENT) for s in SCORING_SOURCES]
        async with sem:
            await stub.EnrollSubject(consent_pb2.EnrollSubjectRequest(request_id=f"e-{sid}", subject_id=sid),
                                     timeout=30)
            for source, purpose in grants:
                await stub.GrantConsent(consent_pb2.GrantConsentRequest(
                    request_id=f"g-{sid}-{source}-{purpose}", subject_id=sid, source=source, purpose=purpose),
                    timeout=30)

    try:
        await asyncio.gather(*(one(i, s) for i, s in enumerate(subject_ids)))
    finally:
        await channel.close()


async def ingest_all(addr: str, groups: dict[str, list[records_pb2.Record]]) -> None:
    channel = create_channel(addr)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    try:
        for producer, records in groups.items():
            for i in range(0, len(records), BATCH):
                reply = await stub.IngestRecords(ingest_pb2.IngestRecordsRequest(
                    request_id=f"{producer}-{i}", producer_id=producer, records=records[i:i + BATCH]), timeout=120)
                wrong = [r for r in reply.results if r.status != ingest_pb2.RECORD_STATUS_ACCEPTED]
                if wrong:
                    raise RuntimeError(f"{len(wrong)} records not accepted, e.g. {wrong[0]}")
    finally:
        await channel.close()


async def export_once(addr: str, chunk_size: int, expected: list[tuple[str, bytes]], skipped: int) -> float:
    """Seconds for one whole export; raises on the first wrong answer."""
    limit = max(chunk_size or DEFAULT_EXPORT_CHUNK, MIN_EXPORT_CHUNK)
    channel = create_channel(addr)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    got: list[tuple[str, bytes]] = []
    skipped_seen = messages = 0
    try:
        start = time.perf_counter()
        call = stub.ExportTrainingRecords(ingest_pb2.ExportTrainingRecordsRequest(chunk_size=chunk_size),
                                          timeout=600)
        async for reply in call:
            messages += 1
            if len(reply.records) > limit:
                raise RuntimeError(f"chunk_size {chunk_size}: a message held {len(reply.records)} records")
            skipped_seen += reply.skipped_without_consent
            got.extend((s.producer_id, s.record.SerializeToString(deterministic=True)) for s in reply.records)
        seconds = time.perf_counter() - start
    finally:
        await channel.close()
    if got != expected:
        first = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                     min(len(got), len(expected)))
        raise RuntimeError(f"chunk_size {chunk_size}: {len(got)} records exported, {len(expected)} expected; "
                           f"first difference at {first}")
    if skipped_seen != skipped:
        raise RuntimeError(f"chunk_size {chunk_size}: {skipped_seen} skipped reported, {skipped} expected")
    print(f"  chunk_size {chunk_size:>4}: {seconds:7.3f} s, {messages} messages, "
          f"{len(got) / seconds:,.0f} records/s")
    return seconds


# Runs the command and prints its own peak resident memory (VmHWM) at exit. Not the
# rusage of children: on Linux a child's maxrss counts the parent's memory at fork,
# and this process holds the whole population.
_PEAK_MEMORY_WRAPPER = """
import atexit, runpy, sys
def peak():
    try:
        print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).strip(), file=sys.stderr)
    except (OSError, StopIteration):
        pass
atexit.register(peak)
sys.argv[0] = 'creditscore'
runpy.run_module('creditscore.cli', run_name='__main__')
"""


async def parquet_export(addr: str, workdir: Path, population: Population,
                         index: dict[str, int]) -> dict[str, object]:
    """``creditscore export-training`` from the ingest service, as its own process:
    seconds, peak memory, and every row checked against the matrix of the consented
    records built in memory (the subject keys made with a known pseudonym key)."""
    key, out = workdir / "pseudonym.key", workdir / "training.parquet"
    key.write_bytes(b"the benchmark's pseudonym key, 32+ bytes")
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PEAK_MEMORY_WRAPPER, "export-training", "--ingest", addr, "--out", str(out),
        "--pseudonym-key-file", str(key), "--quiet", env={**os.environ, "OTEL_SDK_DISABLED": "true"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"export-training failed: {stderr.decode(errors='replace')[-2000:]}")
    peak = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith("VmHWM:")]
    rss_mb = int(peak[-1].split()[1]) / 1024 if peak else float("nan")
    data = read_training_matrix(out)
    direct = point_in_time_matrix([r for r in population.records if developing(index[r.subject_id])],
                                  population.outcomes)
    pseudonym = Pseudonyms.keyed(key.read_bytes())
    keys = pq.read_table(out, columns=["subject_key"]).column(0).to_pylist()
    expected_keys = [pseudonym(s) for s in direct.subject_ids]
    a, b = np.argsort(np.array(keys)), np.argsort(np.array(expected_keys))
    same_x = np.array_equal(data.X[a], direct.X[b], equal_nan=True) if len(keys) == len(expected_keys) else False
    if (len(keys) != len(expected_keys) or [keys[i] for i in a] != [expected_keys[i] for i in b]
            or data.y[a].tolist() != direct.y[b].tolist() or not same_x):
        raise RuntimeError("the Parquet file's rows are not the matrix of the consented records")
    print(f"export-training to Parquet: {seconds:.2f} s (process start and imports included), {len(data)} rows "
          f"in {data.row_groups} row groups, peak RSS {rss_mb:.0f} MB (its own VmHWM); every row checked")
    return {"parquet_s": seconds, "parquet_rows": len(data), "parquet_peak_rss_mb": round(rss_mb)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    print(describe_machine())
    print(code_version())
    print("services run with AUTH_MODE=disabled and tracing off: the figure is the export's own cost")
    now = datetime.now(UTC).replace(microsecond=0)
    population = simulate(args.subjects, seed=args.seed, as_of=now)
    groups = {p: rs for p, rs in sorted(population.by_producer().items())}
    total = sum(len(v) for v in groups.values())
    index = {s.subject_id: i for i, s in enumerate(population.subjects)}
    stored = sorted((r.subject_id, p, r.record_id, r) for p, rs in groups.items() for r in rs)
    expected = [(p, r.SerializeToString(deterministic=True)) for _, p, _, r in stored
                if SOURCE_OF_BODY[str(r.WhichOneof("body"))] == common_pb2.DATA_SOURCE_OUTCOMES
                or developing(index[r.subject_id])]
    skipped = total - len(expected)
    print(f"population: {len(population.subjects)} subjects, {total} records, {len(expected)} consented to "
          f"model development, {skipped} not; seed {args.seed}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    consent = await start_service("consent_service", {
        "DATABASE_URL": f"sqlite:///{workdir}/consent.db",
        "TOKEN_SIGNING_KEY_FILE": str(workdir / "keys" / "token-signing.pem")}, workdir / "consent.log")
    ingest: Service | None = None
    figures: dict[str, object] = {"records": total, "exported": len(expected)}
    try:
        await enroll(consent.addr, [s.subject_id for s in population.subjects])
        ingest = await start_service("ingest_service", {
            "DATABASE_URL": f"sqlite:///{workdir}/ingest.db", "CONSENT_SERVICE_ADDR": consent.addr,
            "OUTBOX_DISPATCH": "false"}, workdir / "ingest.log")
        await ingest_all(ingest.addr, groups)
        print("warm-up (not timed):")
        await export_once(ingest.addr, 0, expected, skipped)
        times: dict[int, list[float]] = {c: [] for c in args.chunk_sizes}
        for round_ in range(args.repeat):
            print(f"round {round_ + 1} of {args.repeat}")
            for chunk_size in args.chunk_sizes:
                times[chunk_size].append(await export_once(ingest.addr, chunk_size, expected, skipped))
        figures.update(await parquet_export(ingest.addr, workdir, population, index))
    finally:
        if ingest is not None:
            await ingest.stop()
        await consent.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {c: statistics.median(t) for c, t in times.items()}
    for chunk_size, seconds in medians.items():
        figures[f"s_chunk{chunk_size or 'default'}"] = seconds
    if 0 in medians:
        for chunk_size, seconds in medians.items():
            if chunk_size:
                figures[f"ratio_chunk{chunk_size}_vs_default"] = seconds / medians[0]
    return figures


def _chunk_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export_training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 subjects, one run each")
    parser.add_argument("--subjects", type=int, help="subjects to simulate (default 400; quick 100)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, help="runs per chunk size, the median kept (default 3; quick 1)")
    parser.add_argument("--chunk-sizes", type=_chunk_sizes, default=[1, 7, 50, 0, 1000],
                        help="comma-separated (0 = the default, 500)")
    args = parser.parse_args(argv)
    args.subjects = args.subjects or (100 if args.quick else 400)
    args.repeat = args.repeat or (1 if args.quick else 3)
    print("how: seconds for one whole ExportTrainingRecords stream over gRPC (real ingest and consent "
          "services, SQLite), every record checked; ratio = that chunk size's time / the default's")
    try:
        figures = asyncio.run(run(args))
    except RuntimeError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(result_line("export_training", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
