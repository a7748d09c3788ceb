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

from creditscore.cli.run import _free_port


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


def test_the_demo_keeps_credentials_refuses_taken_ports_and_tokens_refresh(tmp_path):
    """``make run`` serving: its credentials files give fresh tokens (a newcomer's
    token expires after 15 minutes), and a second ``make run`` on the same ports
    refuses at once, touching nothing of the first."""
    data = tmp_path / "demo"
    base = _free_port()
    while any(_busy(base + i) for i in range(5)):
        base = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "creditscore.cli", "run", "--subjects", "12", "--seed", "3",
         "--base-port", str(base), "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any("serving until interrupted" in line for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        while not any(line.startswith("logs in") for line in lines):
            lines.append(proc.stdout.readline())
        shown = "".join(lines)
        keys = data / "keys"
        assert f"{keys}/" in shown and "creditscore token --credentials" in shown
        partner = keys / "partner-demo-lender.json"
        producers = sorted(p.name for p in keys.glob("producer-*.json"))
        subjects = sorted(keys.glob("subject-*.json"))
        assert partner.is_file() and len(producers) == 5 and len(subjects) >= 5
        assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in [partner, *subjects])

        # A fresh partner token from the kept credentials, through the gateway's relay ...
        cli = [sys.executable, "-m", "creditscore.cli"]
        token = subprocess.run([*cli, "token", "--credentials", str(partner), "--gateway", f"127.0.0.1:{base}"],
                               capture_output=True, text=True, timeout=30)
        assert token.returncode == 0, token.stderr
        subject_id = subjects[0].stem.removeprefix("subject-")
        looked = subprocess.run([*cli, "lookup", subject_id, "--gateway", f"127.0.0.1:{base}"],
                                capture_output=True, text=True, timeout=30,
                                env={**os.environ, "CREDITSCORE_TOKEN": token.stdout.strip()})
        assert looked.returncode == 0 and subject_id in looked.stdout, looked.stdout + looked.stderr
        # ... and a subject's, from the consent service.
        mine = subprocess.run([*cli, "token", "--credentials", str(subjects[0]), "--consent", f"127.0.0.1:{base + 1}"],
                              capture_output=True, text=True, timeout=30)
        assert mine.returncode == 0 and mine.stdout.count(".") == 2, mine.stderr

        # A second run on the same ports: refused, with the reason, and the first's data untouched.
        second = subprocess.run(
            [*cli, "run", "--subjects", "5", "--base-port", str(base), "--no-serve", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "in use by another process" in second.stderr and str(base) in second.stderr, second.stderr
        assert partner.is_file() and (data / "consent_service.db").is_file()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
