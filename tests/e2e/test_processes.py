"""Services as real processes: `python -m <package>` serves health, and SIGTERM
stops it cleanly; the README's run command ends in real lookups."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.demo import _free_port


def _wait_ready(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("READY"):
            return line
    raise AssertionError("service did not print READY:\n" + "".join(lines))


def test_sigterm_stops_a_service_cleanly(tmp_path):
    port = _free_port()
    env = {**os.environ, "GRPC_PORT": str(port), "GRPC_HOST": "127.0.0.1",
           "DATABASE_URL": f"sqlite:///{tmp_path}/consent.db", "GRPC_GRACE_SECONDS": "2"}
    # In tmp_path: the consent service writes its development token keys under var/.
    proc = subprocess.Popen([sys.executable, "-m", "consent_service"], env=env, text=True, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert f"port={port}" in _wait_ready(proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="creditscore.consent.v1.ConsentService"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        rest = proc.stdout.read()
        assert "stopped" in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_run_command_ends_in_lookups_through_the_gateway(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "creditscore.cli", "run", "--subjects", "40", "--seed", "5",
         "--base-port", "0", "--no-serve", "--data-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "services SERVING" in out.stdout
    assert "RECORD_STATUS_DUPLICATE" in out.stdout
    assert " score " in out.stdout, out.stdout
    assert "threshold 600: " in out.stdout
    # The revoked authorization, the unknown subject and the threshold-only scope
    # are refused alike.
    assert out.stdout.count("PERMISSION_DENIED [NOT_AUTHORIZED]") == 3, out.stdout
    assert "lists 3 lookups" in out.stdout
    # The subject's own view through the gateway, with the secret shown at enrollment.
    assert "(a token of kind subject): " in out.stdout, out.stdout
    assert "exit 0" in out.stdout and "exit 1" not in out.stdout
