"""Training at population scale: ``creditscore train --simulate N`` at several N,
time and peak memory, against the all-in-memory path at the smallest N.

``python -m bench.training_scale [--quick] [--sizes 2000,10000,100000] [--workers W]``

Each run is a fresh process (``python -m bench.training_scale --child ...``), so that
its peak resident memory is its own: the parent reads it with ``os.wait4`` (the
child's ``ru_maxrss``, which covers its own peak and, as Linux counts it, the
largest of its own reaped children, i.e. the largest worker). The child also
reports its own ``VmHWM`` and the largest worker's peak separately. Time is the
child's wall clock around the command's ``main`` (simulating, the point-in-time
matrix, binning, fitting, metrics, writing the model file), not the interpreter's
start.

- **chunked** (the command as shipped): ``creditscore train --simulate N --workers W``,
  the population made and replayed ``DEFAULT_CHUNK_SUBJECTS`` subjects at a time.
- **reference** (the path before): ``simulate(N)`` (every record in memory),
  ``point_in_time_matrix`` of all of them, ``train_matrix``; run at the smallest N
  only (it needs about 200 KB a subject).

Checks, on every model timed (the run stops without a figure at the first failure):
the model file loads and validates (``Scorecard.load``) with its version; it has
features; its rows (train + holdout) are 70-90% of N (the applicants); its holdout
AUC is within 0.70-0.92 (the simulator is tuned to about 0.8). At the smallest N the
chunked model file must equal the reference's in every field but ``train_time``
(when it was written): same matrix, same model, same scores.

Figures per N: seconds, CPU seconds (the command's and its workers', from
``wait4``: less disturbed than wall time by other work on the machine), subjects/s,
peak RSS of the command's process and of its
largest worker, peak RSS per subject, and the marginal memory per subject between
consecutive sizes (flat memory: near zero).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import code_version, describe_machine, result_line

_VERSION = "1.0.0"
_DESCRIPTION = "training_scale benchmark"
_SEED = 7


def _vm_hwm_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _child(mode: str, n: int, out: str, workers: int) -> int:
    """One timed run in this (fresh) process; prints a JSON line of its figures."""
    import resource

    started = time.perf_counter()
    if mode == "chunked":
        from creditscore.cli.train import main as train_main

        code = train_main([
            "--simulate", str(n), "--seed", str(_SEED), "--version", _VERSION, "--description", _DESCRIPTION,
            "--out", out, "--workers", str(workers), "--quiet", "--force",
        ])
        if code != 0:
            return code
    else:
        from creditscore.features.engine import point_in_time_matrix
        from creditscore.scorecard.artifact import save_model
        from creditscore.scorecard.config import TrainingConfig
        from creditscore.scorecard.training import train_matrix
        from creditscore.sim import simulate

        population = simulate(n, seed=_SEED)
        matrix = point_in_time_matrix(population.records, population.outcomes)
        del population
        config = TrainingConfig(version=_VERSION, description=_DESCRIPTION, seed=_SEED)
        save_model(train_matrix(matrix.X, matrix.y, list(matrix.feature_names), config).artifact, out)
    seconds = time.perf_counter() - started
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "vmhwm_kb": _vm_hwm_kb(), "workers_kb": workers_kb}), flush=True)
    return 0


def _run(mode: str, n: int, out: Path, workers: int) -> dict[str, Any]:
    """Runs one child; its figures plus ``wait4``'s peak RSS of it."""
    command = [sys.executable, "-m", "bench.training_scale", "--child", mode, "--n", str(n), "--out", str(out),
               "--workers", str(workers)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"FAILED: {mode} N={n} exited with {proc.returncode}; no figure")
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    figures["maxrss_kb"] = usage.ru_maxrss
    # CPU seconds of the child and of its workers (wait4 counts its reaped children):
    # less sensitive than wall time to other work on the machine.
    figures["cpu_s"] = usage.ru_utime + usage.ru_stime
    return figures


def _check_model(path: Path, n: int) -> dict[str, Any]:
    """The model file is valid and plausible; returns its artifact (stops the run if not)."""
    from creditscore.scorecard.model import Scorecard

    card = Scorecard.load(path)
    artifact: dict[str, Any] = json.loads(path.read_text())
    metrics = artifact["metrics"]
    rows = metrics["n_train"] + metrics["n_holdout"]
    problems = []
    if card.version != _VERSION:
        problems.append(f"version {card.version!r}")
    if not artifact["features"]:
        problems.append("no features")
    if not 0.70 * n <= rows <= 0.90 * n:
        problems.append(f"{rows} rows for {n} subjects")
    if not 0.70 <= metrics["auc"] <= 0.92:
        problems.append(f"holdout AUC {metrics['auc']:.4f} outside 0.70-0.92")
    if problems:
        raise SystemExit(f"FAILED: the model of N={n}: {'; '.join(problems)}; no figure")
    return artifact


def _model_content(path: Path) -> str:
    """The model file without its ``train_time`` (when it was written)."""
    artifact = json.loads(path.read_text())
    if not artifact.pop("train_time", None):
        raise SystemExit(f"FAILED: {path.name} has no train_time; no figure")
    return json.dumps(artifact, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1000,5000")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 2000,10000,100000)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="--workers of the command (default: 2, or 1 on one CPU)")
    parser.add_argument("--child", choices=("chunked", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.n, args.out, args.workers)

    sizes = [int(s) for s in (args.sizes or ("1000,5000" if args.quick else "2000,10000,100000")).split(",")]
    sizes.sort()
    print("training_scale: creditscore train --simulate N, each run in a fresh process")
    print(describe_machine())
    print(code_version())
    print(f"seed {_SEED}; chunked runs with --workers {args.workers}; reference (all in memory) at N={sizes[0]}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        smallest = sizes[0]
        ref_path = Path(tmp) / "reference.json"
        ref = _run("reference", smallest, ref_path, 1)
        _check_model(ref_path, smallest)
        for n in sizes:
            path = Path(tmp) / f"chunked-{n}.json"
            figures = _run("chunked", n, path, args.workers)
            artifact = _check_model(path, n)
            if n == smallest and _model_content(path) != _model_content(ref_path):
                raise SystemExit(f"FAILED: at N={n} the chunked model file differs from the reference's; no figure")
            figures["n"] = n
            figures["auc"] = artifact["metrics"]["auc"]
            rows.append(figures)

    print()
    print(f"reference N={smallest}: {ref['seconds']:.1f} s ({ref['cpu_s']:.1f} s CPU), "
          f"peak RSS {ref['vmhwm_kb'] / 1024:.0f} MB "
          f"({ref['vmhwm_kb'] * 1024 / smallest / 1000:.0f} KB a subject); the chunked model file is "
          f"the same but for its train_time")
    print(f"{'N':>8} {'seconds':>8} {'CPU s':>7} {'subjects/s':>10} {'peak MB':>8} {'worker MB':>9} "
          f"{'KB/subject':>10} {'marginal B/subject':>18} {'AUC':>7}")
    previous: dict[str, Any] | None = None
    for r in rows:
        peak_kb = r["peak_kb"] = r["vmhwm_kb"]
        marginal = "" if previous is None else (
            f"{(peak_kb - previous['peak_kb']) * 1024 / (r['n'] - previous['n']):.0f}")
        print(f"{r['n']:>8} {r['seconds']:>8.1f} {r['cpu_s']:>7.1f} {r['n'] / r['seconds']:>10.0f} "
              f"{peak_kb / 1024:>8.0f} "
              f"{r['workers_kb'] / 1024:>9.0f} {peak_kb * 1024 / r['n'] / 1000:>10.1f} {marginal:>18} "
              f"{r['auc']:>7.4f}")
        previous = r
    first, last = rows[0], rows[-1]
    figures: dict[str, Any] = {}
    for r in rows:
        figures[f"s_{r['n']}"] = round(r["seconds"], 2)
        figures[f"mb_{r['n']}"] = round(r["peak_kb"] / 1024, 1)
    figures["worker_mb_max"] = round(max(r["workers_kb"] for r in rows) / 1024, 1)
    figures["subjects_per_s"] = round(last["n"] / last["seconds"], 1)
    figures["bytes_per_subject"] = round(last["peak_kb"] * 1024 / last["n"], 1)
    figures[f"cpu_s_{last['n']}"] = round(last["cpu_s"], 1)
    figures["speedup_vs_reference"] = round(ref["seconds"] / first["seconds"], 3)
    figures["cpu_ratio_vs_reference"] = round(first["cpu_s"] / ref["cpu_s"], 3)
    figures["memory_ratio_vs_reference"] = round(first["peak_kb"] / ref["vmhwm_kb"], 3)
    figures["workers"] = args.workers
    print()
    print("peak MB: the command's own process (VmHWM); worker MB: the largest worker process's peak (0: none);")
    print("with W workers the machine holds at most peak + W x worker MB at once.")
    print(result_line("training_scale", figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
