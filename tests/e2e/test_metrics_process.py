"""`python -m <service>` with OTEL_METRICS_EXPORTER set exports its RPC metrics:
run_main builds the meter provider from the environment and the server records
every call, down to the last collection at shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditscore.cli.run import _free_port


def test_a_service_process_exports_rpc_metrics(tmp_path):
    port = _free_port()
    env = {**os.environ, "GRPC_PORT": str(port), "GRPC_HOST": "127.0.0.1", "GRPC_GRACE_SECONDS": "1",
           "OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "60000",
           "OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "gateway-under-test",
           "AUTH_MODE": "disabled"}  # health calls only: no token key needed
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, text=True, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the gateway exited before it was ready"
            if line.startswith("READY"):
                break
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(3):
                stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # The export interval is a minute: what is printed is the collection at shutdown.
    decoder, text, exported = json.JSONDecoder(), out, []
    while "{" in text:
        text = text[text.index("{"):]
        document, end = decoder.raw_decode(text)
        exported.append(document)
        text = text[end:]
    points = {}
    for document in exported:
        for resource_metrics in document["resource_metrics"]:
            assert resource_metrics["resource"]["attributes"]["service.name"] == "gateway-under-test"
            for scope in resource_metrics["scope_metrics"]:
                for metric in scope["metrics"]:
                    for point in metric["data"]["data_points"]:
                        key = (metric["name"], point["attributes"]["rpc.method"],
                               point["attributes"]["rpc.response.status_code"])
                        points[key] = point
    check = "grpc.health.v1.Health/Check"
    assert points[("creditscore.rpc.server.calls", check, "OK")]["value"] == 3
    assert points[("rpc.server.call.duration", check, "OK")]["count"] == 3
