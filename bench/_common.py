"""What the benchmarks share: the machine they ran on, timers, the synthetic
population, the peers' import with a clear message, services started as their own
processes, and the RESULT line."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "BENCH_ENV",
    "Service",
    "code_version",
    "describe_machine",
    "require_peers",
    "result_line",
    "start_service",
    "synthetic_population",
    "timed",
]

T = TypeVar("T")
_ROOT = Path(__file__).resolve().parent.parent


def describe_machine() -> str:
    """One line: CPU count, Python, numpy and its BLAS threads setting, platform,
    and the load average when the run started (a busy machine is a slow one)."""
    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("OPENBLAS_NUM_THREADS") or "default"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__} "
        f"(BLAS threads {threads}), {platform.system()} {platform.machine()}; "
        f"load average {load} (other work on the machine slows every figure)"
    )


def code_version() -> str:
    """The commit the figures come from, and whether the working tree differed
    from it (figures measured on uncommitted code say so)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code: unknown (not a git checkout)"
    return f"code: commit {commit}" + (" plus uncommitted changes" if dirty else "")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``(fn(), seconds)`` on the monotonic performance clock."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def require_peers(names: Sequence[str]) -> dict[str, Any]:
    """Imports the peer libraries by name, or exits with a message that says how
    to install them (they are the optional ``bench`` group, not product needs)."""
    modules: dict[str, Any] = {}
    missing: list[str] = []
    for name in names:
        try:
            with warnings.catch_warnings():  # scorecardpy's own import warns about pkg_resources
                warnings.simplefilter("ignore")
                modules[name] = __import__(name)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        sys.exit(
            "this benchmark compares with peer libraries that are not installed: "
            + ", ".join(missing)
            + "\ninstall the optional group: pip install -e '.[bench]'"
        )
    return modules


def synthetic_population(
    n: int, names: Sequence[str], directions: Sequence[int], seed: int, *, missing_max: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: ``n`` rows of ``len(names)`` features with a logistic ground truth.

    Features are standard normal, except every fourth, which is a small count
    (Poisson, many ties, as real counts are) and every seventh, which is binary.
    Every feature carries some signal, in its catalog ``direction`` (the weights
    fall from 0.8 to 0.1); P(bad) = sigmoid(-2.2 - sum(direction * weight * x)),
    about 22% bads. Each feature then loses a share of its values (0 to
    ``missing_max``, NaN = no data) at random, after y was drawn."""
    rng = np.random.default_rng(seed)
    k = len(names)
    X = rng.standard_normal(size=(n, k))
    for j in range(k):
        if j % 4 == 3:
            X[:, j] = rng.poisson(2.0, size=n).astype(np.float64)
        elif j % 7 == 6:
            X[:, j] = (X[:, j] > -0.3).astype(np.float64)
    standardised = (X - X.mean(axis=0)) / X.std(axis=0)
    weights = np.linspace(0.8, 0.1, k) * np.asarray(directions, dtype=np.float64)
    logit = -2.2 - standardised @ weights
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    rates = rng.uniform(0.0, missing_max, size=k)
    X[rng.random((n, k)) < rates] = np.nan
    return X, y


def result_line(name: str, figures: dict[str, Any]) -> str:
    """``RESULT <name> key=value ...``: floats with up to 4 significant decimals."""
    parts = []
    for key, value in figures.items():
        if isinstance(value, float):
            text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
        else:
            text = str(value)
        parts.append(f"{key}={text}")
    return f"RESULT {name} " + " ".join(parts)


#: Over the suite's defaults in the lookup benchmarks: their one partner drives the
#: whole load, so its lookup limit (PARTNER_LOOKUP_RATE, 500/s by default) is raised
#: out of the way; the limiter still runs on every lookup.
BENCH_ENV = {"PARTNER_LOOKUP_RATE": "1000000", "PARTNER_LOOKUP_BURST": "1000000"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A service running as its own process."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_service(
    package: str, env: dict[str, str], log: Path, *, profile_dir: Path | None = None
) -> Service:
    """``python -m package`` on a free port with ``env`` (over this process's
    environment), its output to ``log``, token authentication off (a benchmark
    that times tokens turns it on in ``env``), returned once it logs READY;
    RuntimeError with the log's tail when it exits or takes over 60 s.
    ``profile_dir``: a cProfile of the process written there."""
    port = free_port()
    profile = [] if profile_dir is None else ["-m", "cProfile", "-o", str(profile_dir / f"{log.stem}.prof")]
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *profile, "-m", package,
            env={**os.environ, "LOG_LEVEL": "ERROR", "AUTH_MODE": "disabled", **env,
                 "GRPC_HOST": "127.0.0.1", "GRPC_PORT": str(port)},
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b"READY" not in log.read_bytes():
        if proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{package} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        await asyncio.sleep(0.05)
    return Service(proc, port, log)
