"""Coverage-guided fuzzing (atheris, libFuzzer) of what parses hostile input
before any handler runs: record validation and token parsing.

``python -m bench.fuzz_records [--seconds S] [--target records|apply|tokens|claims|all]``

Needs the optional group ``fuzz`` (``pip install -e '.[fuzz]'``): atheris, which
ships wheels for Linux x86_64 (elsewhere it builds against clang's libFuzzer).

Targets, each in a process of its own for ``--seconds`` (default 60) of
libFuzzer's time, coverage instrumented over the modules named:

- ``records``: the input parsed as a ``records.v1.Record`` (bytes that do not
  parse are skipped), then ``ingest_service.validation.validate_record``;
  anything raised is a finding (it answers with a list of violations);
- ``apply``: the input as a ``feature.v1.ApplyRecordsRequest``, then
  ``feature_service.validation.validate_apply_records``; only
  ``InvalidArgument`` may be raised;
- ``tokens``: the input as text, as the bearer value of the ``authorization``
  metadata and as a token, through ``runtime._auth``'s ``_bearer``,
  ``subject_session_of`` and ``TokenVerifier.verify`` (a real Ed25519 key);
  only ``Unauthenticated``/``Unavailable`` may be raised;
- ``claims``: the input as a JSON claims object (and header fields), signed
  with the verifier's own key, so the claim checks behind the signature are
  reached: only ``Unauthenticated`` may be raised, and an accepted token must
  name a known kind, a non-empty subject and a generation >= 0.

Each target starts from a small corpus of valid inputs (a simulated producer's
records, a token as the consent service issues it). A finding stops the target
with libFuzzer's report and the input (``crash-*``) in the working directory;
the run then exits 1 without a RESULT line. Otherwise ends with one
``RESULT fuzz_records target=... runs=... seconds=...`` line per target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import code_version, describe_machine, result_line

TARGETS = ("records", "apply", "tokens", "claims")


def _seed_corpus(target: str, folder: Path) -> None:
    """A few valid inputs for ``target`` in ``folder``."""
    from creditscore.feature.v1 import feature_pb2
    from creditscore.sim import simulate

    folder.mkdir(parents=True, exist_ok=True)
    if target in ("records", "apply"):
        population = simulate(3, seed=1, as_of=datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
        records = population.records[:40]
        for i, record in enumerate(records):
            if target == "records":
                data = record.SerializeToString()
            else:
                data = feature_pb2.ApplyRecordsRequest(request_id=f"r{i}", records=[
                    feature_pb2.RecordEnvelope(producer_id="wallet", record=record)]).SerializeToString()
            (folder / f"seed-{i}").write_bytes(data)
        return
    keys = _Keys()
    for i, kind in enumerate(("partner", "producer", "service", "subject")):
        claims = keys.claims(kind)
        if target == "tokens":
            (folder / f"seed-{i}").write_text(keys.sign(claims))
        else:
            (folder / f"seed-{i}").write_text(json.dumps(claims))


class _Keys:
    """One Ed25519 key, its verifier, and claims as the consent service writes them."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from creditscore.runtime import AUDIENCE_GATEWAY, AUDIENCE_INGEST, AUDIENCE_INTERNAL, TokenVerifier

        self.key = Ed25519PrivateKey.generate()
        public = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.verifier = TokenVerifier(public, (AUDIENCE_GATEWAY, AUDIENCE_INGEST, AUDIENCE_INTERNAL))
        self.kid = next(iter(self.verifier.keys))

    def claims(self, kind: str) -> dict[str, Any]:
        from creditscore.runtime._auth import AUDIENCE_OF_KIND, ISSUER

        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "sub": f"{kind}-1", "aud": AUDIENCE_OF_KIND[kind], "kind": kind,
                                  "iat": now, "exp": now + 900, "jti": "j1", "gen": 1}
        if kind == "producer":
            claims["sources"] = ["DATA_SOURCE_PAYMENTS"]
        return claims

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        import jwt

        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid, **(headers or {})})


def _fuzz(target: str, seconds: int, corpus: Path) -> None:
    """The child: instruments the target's modules, then runs libFuzzer."""
    import atheris
    import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401 - imported uninstrumented
    import grpc  # noqa: F401
    import jwt  # noqa: F401
    import sqlalchemy  # noqa: F401
    from google.protobuf.message import DecodeError

    # Only the project's own code is instrumented (the libraries under it are not).
    with atheris.instrument_imports(include=["creditscore.runtime", "ingest_service", "feature_service"]):
        import feature_service.validation
        import ingest_service.validation
        from creditscore.runtime import _auth

    from creditscore.feature.v1 import feature_pb2
    from creditscore.records.v1 import records_pb2
    from creditscore.runtime import DomainError, InvalidArgument, Unauthenticated, Unavailable

    now = datetime.now(UTC)
    keys = _Keys() if target in ("tokens", "claims") else None

    def records(data: bytes) -> None:
        try:
            record = records_pb2.Record.FromString(data)
        except DecodeError:
            return
        out = ingest_service.validation.validate_record(record, now)
        assert isinstance(out, list)

    def apply(data: bytes) -> None:
        try:
            request = feature_pb2.ApplyRecordsRequest.FromString(data)
        except DecodeError:
            return
        try:
            feature_service.validation.validate_apply_records(request, latest_allowed=now)
        except InvalidArgument:
            pass

    def tokens(data: bytes) -> None:
        assert keys is not None
        text = data.decode("utf-8", errors="replace")
        try:
            _auth._bearer((("authorization", text),))
            _auth.subject_session_of(((_auth.SUBJECT_SESSION_METADATA, text),))
        except (Unauthenticated, Unavailable):
            pass
        try:
            keys.verifier.verify(text)
        except (Unauthenticated, Unavailable):
            pass

    def claims(data: bytes) -> None:
        assert keys is not None
        try:
            value = json.loads(data.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            return
        if not isinstance(value, dict):
            return
        headers = value.pop("_headers", None)
        try:
            token = keys.sign(value, headers if isinstance(headers, dict) else None)
        except (TypeError, ValueError, OverflowError, RecursionError):
            return  # not something a signer would write: nothing to verify
        try:
            principal = keys.verifier.verify(token)
        except DomainError as exc:
            assert isinstance(exc, Unauthenticated), exc
            return
        assert principal.kind in _auth.KINDS and principal.id and principal.generation >= 0, principal

    one = {"records": records, "apply": apply, "tokens": tokens, "claims": claims}[target]
    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-print_final_stats=1",
                   str(corpus)], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="libFuzzer time per target")
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _fuzz(args.target, args.seconds, Path(args.corpus))
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    print(describe_machine())
    print(code_version())
    lines = []
    for target in TARGETS if args.target == "all" else (args.target,):
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as folder:
            corpus = Path(folder) / "corpus"
            _seed_corpus(target, corpus)
            seeds = len(list(corpus.iterdir()))
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "bench.fuzz_records", "--child", "--target", target,
                 "--seconds", str(args.seconds), "--corpus", str(corpus)],
                capture_output=True, text=True, errors="replace", env={**os.environ, "PYTHONHASHSEED": "0"})
            seconds = time.perf_counter() - started
            grown = len(list(corpus.iterdir()))
        output = proc.stderr + proc.stdout
        runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
        cov = re.findall(r"cov: (\d+)", output)
        if proc.returncode != 0:
            print(output[-6000:], file=sys.stderr)
            print(f"FAILED: target {target}: libFuzzer exited with {proc.returncode} (a finding above)",
                  file=sys.stderr)
            return 1
        print(f"{target}: {int(runs.group(1)) if runs else 0:,} inputs in {seconds:.0f} s, coverage "
              f"{cov[-1] if cov else '?'} edges, corpus {seeds} seeds -> {grown} inputs, no finding")
        lines.append(result_line("fuzz_records", {"target": target, "runs": int(runs.group(1)) if runs else 0,
                                                  "seconds": args.seconds, "edges": int(cov[-1]) if cov else 0,
                                                  "findings": 0}))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
