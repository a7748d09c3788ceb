"""The figures of ``bench.population``, apart from the services that produce them:
one ``Stage`` per step of the population path, one ``PopulationRun`` per run, the
lines printed, the ``RESULT population ...`` line and the JSON line kept for the
plot (``bench.population_plot``). No I/O but the one function that appends the
JSON line; tested without a suite."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._common import result_line

__all__ = [
    "STAGES",
    "PopulationRun",
    "Stage",
    "append_json_line",
    "describe_stage",
    "per_subject_bytes",
    "population_result_line",
    "result_figures",
    "work_rate",
]

#: The stages, in the order they run, and what each one's rate counts.
STAGES: dict[str, str] = {
    "signup": "subjects",          # enrolled, every consent granted
    "ingest": "records",           # sent by the producers, every reply checked
    "delivery": "records",         # applied by the feature service, every subject's score materialized
    "rescore": "subjects",         # every materialized score from the newly activated model
    "expiry": "subjects",          # every materialized score out of date at once (a month boundary), scored again
    "train": "outcomes",           # a scorecard trained from the suite's export
    "lookup": "lookups",           # partner lookups through the gateway, 8 in flight
}


@dataclass
class Stage:
    """One stage's figures. ``seconds`` None: not measured (``note`` says why)."""

    name: str
    items: int
    seconds: float | None
    #: VmHWM (peak resident set, kB) of each service process at the end of the stage.
    peak_rss_kb: dict[str, int] = field(default_factory=dict)
    #: Bytes each service's store takes at the end of the stage.
    store_bytes: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def unit(self) -> str:
        return STAGES[self.name]

    @property
    def measured(self) -> bool:
        return self.seconds is not None

    @property
    def rate(self) -> float | None:
        """Items per second; None when not measured (or no time passed)."""
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.items / self.seconds


@dataclass
class PopulationRun:
    subjects: int
    db: str
    records: int
    stages: list[Stage]
    #: Figures beyond a stage's seconds and rate (lookup percentiles, training's peak RSS, ...).
    extra: dict[str, float | int | str] = field(default_factory=dict)
    code: str = ""
    machine: str = ""
    started: str = ""

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["result"] = result_figures(self)
        return out


def per_subject_bytes(store_bytes: dict[str, int], subjects: int) -> dict[str, float]:
    """Bytes per subject in each store."""
    if subjects <= 0:
        raise ValueError("a population has at least one subject")
    return {service: size / subjects for service, size in store_bytes.items()}


def _short(service: str) -> str:
    return service.removesuffix("_service")


def describe_stage(stage: Stage, subjects: int) -> list[str]:
    """The lines printed for one stage."""
    if not stage.measured:
        return [f"{stage.name}: not measured: {stage.note}"]
    assert stage.seconds is not None
    rate = stage.rate
    lines = [
        f"{stage.name}: {stage.items:,} {stage.unit} in {stage.seconds:.2f} s"
        + (f" = {rate:,.1f} {stage.unit}/s" if rate is not None else "")
        + (f" ({stage.seconds / subjects * 1000:.2f} s per 1k subjects)" if subjects else "")
        + (f"; {stage.note}" if stage.note else "")
    ]
    if stage.peak_rss_kb:
        lines.append("  peak RSS (VmHWM) so far: " + ", ".join(
            f"{_short(s)} {kb / 1024:.0f} MB" for s, kb in stage.peak_rss_kb.items()))
    if stage.store_bytes:
        lines.append("  store bytes per subject: " + ", ".join(
            f"{_short(s)} {b:,.0f}" for s, b in per_subject_bytes(stage.store_bytes, subjects).items()))
    return lines


def _finite(value: float | None) -> float | str:
    return "not_measured" if value is None or not math.isfinite(value) else value


def result_figures(run: PopulationRun) -> dict[str, Any]:
    """The key=value pairs of the ``RESULT population`` line, in a fixed order.

    Rates are items per second of each stage; ``e2e_records_per_s`` counts from the
    first record sent to the last one applied with its subject's score
    materialized (ingest + delivery); ``e2e_over_ingest`` is that rate over the
    ingest rate measured in the same run (1.0: delivery keeps up with ingest).
    A stage not measured reads ``not_measured``."""
    figures: dict[str, Any] = {"subjects": run.subjects, "db": run.db, "records": run.records}

    def rate(name: str) -> float | None:
        try:
            return run.stage(name).rate
        except KeyError:
            return None

    def seconds(name: str) -> float | None:
        try:
            return run.stage(name).seconds
        except KeyError:
            return None

    figures["signup_per_s"] = _finite(rate("signup"))
    figures["ingest_records_per_s"] = _finite(rate("ingest"))
    ingest_s, delivery_s = seconds("ingest"), seconds("delivery")
    e2e: float | None = None
    if ingest_s is not None and delivery_s is not None and ingest_s + delivery_s > 0:
        e2e = run.stage("delivery").items / (ingest_s + delivery_s)
    figures["e2e_records_per_s"] = _finite(e2e)
    ingest_rate = rate("ingest")
    figures["e2e_over_ingest"] = _finite(e2e / ingest_rate if e2e is not None and ingest_rate else None)
    figures["rescore_per_s"] = _finite(rate("rescore"))
    figures["rescore_s"] = _finite(seconds("rescore"))
    figures["expiry_per_s"] = _finite(rate("expiry"))
    figures["expiry_s"] = _finite(seconds("expiry"))
    figures["train_s"] = _finite(seconds("train"))
    for key, value in run.extra.items():
        figures[key] = value
    last = run.stages[-1] if run.stages else None
    if last is not None:
        for service, size in per_subject_bytes(last.store_bytes, run.subjects).items():
            figures[f"bytes_per_subject_{_short(service)}"] = round(size)
        for service, kb in last.peak_rss_kb.items():
            figures[f"peak_rss_mb_{_short(service)}"] = round(kb / 1024)
    return figures


def population_result_line(run: PopulationRun) -> str:
    """``RESULT population subjects=N ...``."""
    return result_line("population", result_figures(run))


def append_json_line(path: Path, run: PopulationRun) -> None:
    """Appends the run as one JSON line to ``path`` (its folder made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(run.to_json(), sort_keys=True) + "\n")


#: Shortest window (from the first row moved to the last) a work rate is given for:
#: progress is read every 0.2 s, so a shorter one is mostly the poll's rounding.
MIN_WORK_WINDOW_S = 1.0


def work_rate(items: int, seconds: float, noticed: float) -> tuple[float | str, str]:
    """Subjects per second from the first row moved (``noticed`` s after the
    trigger) until the last (``seconds``), for the RESULT line and in words;
    "not_measured" when the window is under ``MIN_WORK_WINDOW_S``."""
    window = seconds - noticed
    if window < MIN_WORK_WINDOW_S:
        return "not_measured", f"the rest within {MIN_WORK_WINDOW_S:.0f} s (too short a window for a rate)"
    return items / window, f"{items / window:,.0f} subjects/s"
