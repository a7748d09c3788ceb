"""``creditscore run``: the whole suite on one machine, on SQLite, with a simulated
population, ending in real score lookups through the gateway.

1. writes the services' credentials (``keys/service-credentials``) and the token
   key pair (``keys/``: the consent service signs with the private key, the others
   verify with the public one), starts the five services at once, each a separate
   process (``python -m <package>``) with its own SQLite file, authentication
   required everywhere (``AUTH_MODE=required``), and waits for each to report
   SERVING on the health service;
2. simulates a population (``creditscore.sim``), registers its producers with the
   sources each may send, signs every subject up with its consents per data
   source in one call (a few subjects withhold one source, so that some records
   are rejected with CONSENT_REQUIRED) — as an operator, with a service token;
3. ingests every producer's records through the ingest service with that
   producer's own token, sends one batch a second time (stored once), and waits
   until the feature service has applied everything the outbox delivered;
4. registers a demo partner; every subject authorizes it for credit applications
   (full score) and rentals (threshold only); the partner looks scores up through
   the gateway with its token, asks a threshold question, repeats a transaction
   id, and is refused — the same way — for a revoked authorization and for a
   subject that does not exist; then one subject looks at their own score and
   access log through the gateway, with a subject token for the secret shown to
   them at enrollment;
5. keeps serving until interrupted (Ctrl-C / SIGTERM), then stops the services
   gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

# grpcio-health-checking ships no type information (types-grpcio covers grpc alone).
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.feature.v1 import feature_pb2, feature_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc, subject_pb2, subject_pb2_grpc
from creditscore.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from creditscore.records.v1 import records_pb2
from creditscore.runtime import CallError, TlsSettings, TokenSource, create_channel, health_status, tool_channel

if TYPE_CHECKING:  # the simulator is imported when a population is loaded
    from creditscore.sim import Population, SimulatedSubject

__all__ = ["SERVICES", "DemoAuth", "main"]

# (package, default port); the order they start in.
SERVICES: tuple[tuple[str, int], ...] = (
    ("consent_service", 50051),
    ("feature_service", 50053),
    ("scoring_service", 50054),
    ("ingest_service", 50052),
    ("gateway", 50050),
)
BATCH = 500
# Loading a population is bulk work: SIGNUP_CONCURRENCY calls in flight, which the
# consent service commits together, on a machine that may be busy. A generous
# deadline per call (each is idempotent on its request_id) keeps a slow moment from
# failing the whole load.
SETUP_CALL_TIMEOUT = 20.0
SIGNUP_CONCURRENCY = 64

#: The services that call others or fetch the revocation list (the consent service
#: signs its own tokens) and
#: the demo itself as an operator: each has a service identity
#: (``SERVICE_CLIENT_ID`` / ``SERVICE_CLIENT_SECRET``).
SERVICE_IDENTITIES = ("ingest_service", "feature_service", "scoring_service", "gateway", "operator")
#: The simulator's producers and the sources each is registered to send.
PRODUCER_SOURCES: dict[str, tuple[common_pb2.DataSource.ValueType, ...]] = {
    "marketplace": (common_pb2.DATA_SOURCE_COMMERCE,),
    "wallet": (common_pb2.DATA_SOURCE_PAYMENTS,),
    "identity-agency": (common_pb2.DATA_SOURCE_IDENTITY,),
    "bureau-partner": (common_pb2.DATA_SOURCE_EXTERNAL,),
    "lender": (common_pb2.DATA_SOURCE_OUTCOMES,),
}
DEMO_PARTNER = "demo-lender"
#: What the demo partner is authorized for: the full score for credit
#: applications, only a yes/no against its threshold for rentals.
PARTNER_PURPOSES: tuple[tuple[common_pb2.AccessPurpose.ValueType, common_pb2.AuthorizationScope.ValueType], ...] = (
    (common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION, common_pb2.AUTHORIZATION_SCOPE_FULL_SCORE),
    (common_pb2.ACCESS_PURPOSE_RENTAL, common_pb2.AUTHORIZATION_SCOPE_THRESHOLD),
)
RENTAL_THRESHOLD = 600

Out = Callable[[str], object]
"""Where the demo's lines go (``print`` by default)."""


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


@dataclass
class DemoAuth:
    """The suite's keys and service identities, in ``<data dir>/keys``: the consent
    service's signing key (generated by it on first start), the public key every
    other service verifies with, and a fresh secret per service identity."""

    folder: Path
    secrets: dict[str, str]
    _tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, data_dir: Path) -> DemoAuth:
        """The folder with the service identities and the token key pair, written
        before any service starts (as an operator mounts them), so that every
        service can start at once instead of after the consent service."""
        folder = data_dir / "keys"
        folder.mkdir(parents=True, exist_ok=True)
        _write_key_pair(folder / "token-signing.pem", folder / "token-public.pem")
        made = {name: secrets.token_urlsafe(32) for name in SERVICE_IDENTITIES}
        path = folder / "service-credentials"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# <service id> <secret>: the identities that may get service tokens\n")
            out.writelines(f"{name} {secret}\n" for name, secret in made.items())
        return cls(folder, made)

    @property
    def signing_key_file(self) -> Path:
        return self.folder / "token-signing.pem"

    @property
    def public_key_file(self) -> Path:
        return self.folder / "token-public.pem"

    def env_for(self, package: str) -> dict[str, str]:
        """The authentication variables of one service of the suite."""
        env = {"AUTH_MODE": "required", "TOKEN_PUBLIC_KEY_FILE": str(self.public_key_file)}
        if package == "consent_service":
            env.update(TOKEN_SIGNING_KEY_FILE=str(self.signing_key_file),
                       TOKEN_PUBLIC_KEY_OUT=str(self.public_key_file),
                       SERVICE_CREDENTIALS_FILE=str(self.folder / "service-credentials"))
        if package in self.secrets:
            env.update(SERVICE_CLIENT_ID=package, SERVICE_CLIENT_SECRET=self.secrets[package])
        return env

    def public_key_ready(self) -> bool:
        path = self.public_key_file
        return path.is_file() and b"END PUBLIC KEY" in path.read_bytes()


def _write_key_pair(private_path: Path, public_path: Path) -> None:
    """A new Ed25519 token key pair, as the consent service generates one: the
    private key PEM (PKCS#8, owner-only), the public key PEM (SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


async def issue_token(
    consent_addr: str, client_id: str, client_secret: str, *, tls: TlsSettings | None = None
) -> str:
    """A token for client credentials, from the consent service's IssueToken."""
    async with create_channel(consent_addr, tls=tls) as channel:
        reply = await consent_pb2_grpc.ConsentServiceStub(channel).IssueToken(
            consent_pb2.IssueTokenRequest(client_id=client_id, client_secret=client_secret), timeout=10)
    return reply.token


def write_credentials(folder: Path, name: str, client_id: str, secret: str, kind: str) -> Path:
    """``<folder>/<name>.json``: a client id and secret (owner-only), as
    ``creditscore token --credentials`` reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"client_id": client_id, "client_secret": secret, "kind": kind}, out, indent=2)
        out.write("\n")
    return path


class PortsTaken(RuntimeError):
    """The suite's ports are taken by other processes."""


def check_ports_free(ports: dict[str, int]) -> None:
    """``PortsTaken`` naming every port of ``ports`` something else listens on."""
    taken = []
    for package, port in ports.items():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"{port} ({package})")
    if taken:
        raise PortsTaken(
            "these ports are in use by another process: " + ", ".join(taken) + ". Stop it (an earlier "
            "`make run` still serving?), or run on other ports: make run ARGS='--base-port 0' (free ports) "
            "or ARGS='--base-port 51050'."
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Suite:
    data_dir: Path
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen[bytes]]
    auth: DemoAuth | None = None
    #: How the demo's own calls reach the services (mutual TLS when set).
    tls: TlsSettings | None = None

    def addr(self, package: str) -> str:
        return f"127.0.0.1:{self.ports[package]}"

    def channel(self, package: str, token: str | None = None) -> grpc.aio.Channel:
        """A channel to ``package`` (over ``tls`` when set) whose calls carry ``token``."""
        return create_channel(self.addr(package), tokens=TokenSource.static(token) if token else None,
                              tls=self.tls)

    async def operator_token(self) -> str:
        """A service token for the demo's own calls (enrolling, granting,
        registering, reading features), fetched once."""
        assert self.auth is not None, "the suite was started without authentication"
        cached = self.auth._tokens.get("operator")
        if cached is None:
            cached = await issue_token(self.addr("consent_service"), "operator", self.auth.secrets["operator"],
                                       tls=self.tls)
            self.auth._tokens["operator"] = cached
        return cached

    def operator_token_source(self) -> TokenSource:
        """The operator's token, fetched again before it expires: for runs longer
        than a token's lifetime (15 minutes)."""
        assert self.auth is not None, "the suite was started without authentication"
        secret = self.auth.secrets["operator"]

        async def fetch() -> str:
            return await issue_token(self.addr("consent_service"), "operator", secret, tls=self.tls)

        return TokenSource(fetch)

    def producer_token(self, producer: str) -> str:
        """The token ``load_population`` got for ``producer``."""
        assert self.auth is not None
        return self.auth._tokens[f"producer:{producer}"]

    async def operator_channel(self, package: str) -> grpc.aio.Channel:
        """A channel to ``package`` whose calls carry the operator's token."""
        return self.channel(package, await self.operator_token())

    def stop(self, grace: float = 15.0) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + grace
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


def start_suite(
    data_dir: Path,
    base_port: int | None,
    *,
    fresh: bool = True,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    database_urls: dict[str, str] | None = None,
) -> Suite:
    """Starts the five services as processes on SQLite files in ``data_dir``,
    authentication required: the consent service first (it generates the token
    key pair), the others once its public key is there. ``base_port`` None: the
    usual ports 50050-50054; 0: free ports. ``PortsTaken`` (before anything is
    touched, the data folder included) when another process listens on one.
    ``env``: variables for every service, over the suite's own. ``database_urls``:
    a service's ``DATABASE_URL`` by package (e.g. a PostgreSQL database each),
    instead of its SQLite file."""
    ports = {}
    for package, default in SERVICES:
        if base_port is None:
            ports[package] = default
        elif base_port == 0:
            ports[package] = _free_port()
        else:
            ports[package] = base_port + (default - 50050)
    check_ports_free(ports)
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    auth = DemoAuth.create(data_dir)
    suite = Suite(data_dir, ports, {}, auth)
    env_common = {
        "CONSENT_SERVICE_ADDR": suite.addr("consent_service"),
        "INGEST_SERVICE_ADDR": suite.addr("ingest_service"),
        "FEATURE_SERVICE_ADDR": suite.addr("feature_service"),
        "SCORING_SERVICE_ADDR": suite.addr("scoring_service"),
        "GRPC_HOST": "127.0.0.1",
        "GRPC_GRACE_SECONDS": "5",
    }
    for package, _ in SERVICES:
        service_env = {**os.environ, **env_common, **auth.env_for(package),
                       "GRPC_PORT": str(ports[package]),
                       "DATABASE_URL": (database_urls or {}).get(package)
                       or f"sqlite:///{data_dir / (package + '.db')}", **(env or {})}
        log = open(data_dir / "logs" / f"{package}.log", "wb")  # noqa: SIM115 - owned by the child
        suite.procs[package] = subprocess.Popen(
            [sys.executable, "-m", package], env=service_env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        if package == "consent_service":
            _wait_public_key(suite, timeout)
    return suite


def _wait_public_key(suite: Suite, timeout: float) -> None:
    """Waits for the consent service to have written the token public key."""
    assert suite.auth is not None
    deadline = time.monotonic() + timeout
    proc = suite.procs["consent_service"]
    while not suite.auth.public_key_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (suite.data_dir / "logs" / "consent_service.log").read_text(errors="replace")
            suite.stop()
            raise RuntimeError(f"the consent service wrote no token public key:\n{log[-3000:]}")
        time.sleep(0.05)


#: The service each package's readiness is asked of (the health service answers
#: for the server as a whole as soon as it listens, for its services once ready).
READY_SERVICE = {
    "consent_service": "creditscore.consent.v1.ConsentService",
    "feature_service": "creditscore.feature.v1.FeatureService",
    "scoring_service": "creditscore.scoring.v1.ScoringService",
    "ingest_service": "creditscore.ingest.v1.IngestService",
    "gateway": "creditscore.gateway.v1.CreditScoreService",
}


async def wait_serving(suite: Suite, timeout: float = 60.0) -> None:
    """Waits until every service of the suite is ready (SERVING by name)."""
    deadline = time.monotonic() + timeout
    for package, _ in SERVICES:
        async with grpc.aio.insecure_channel(suite.addr(package)) as channel:
            while True:
                proc = suite.procs[package]
                if proc.poll() is not None:
                    log = (suite.data_dir / "logs" / f"{package}.log").read_text(errors="replace")
                    raise RuntimeError(f"{package} exited with {proc.returncode}:\n{log[-3000:]}")
                try:
                    if await health_status(channel, READY_SERVICE[package], timeout=1.0):
                        break
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{package} did not become SERVING in {timeout:.0f}s")
                await asyncio.sleep(0.2)


@dataclass
class LoadReport:
    subjects: int
    sent: int
    statuses: Counter[str]
    reasons: Counter[str]
    seconds: float
    resent: int
    resent_statuses: Counter[str]
    accepted_for_features: int
    #: Each subject's own secret, shown once by its enrollment.
    subject_secrets: dict[str, str] = field(default_factory=dict)
    #: Each producer's client secret, shown once by its registration.
    producer_secrets: dict[str, str] = field(default_factory=dict)


def simulate_population(n_subjects: int, seed: int) -> Population:
    """The demo's population: ``n_subjects`` simulated as of today's midnight (UTC)."""
    from creditscore.sim import simulate

    as_of = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return simulate(n_subjects, seed=seed, as_of=as_of)


async def load_population(
    suite: Suite, n_subjects: int, seed: int, out: Out = print, *, population: Population | None = None
) -> tuple[Population, LoadReport]:
    """Signs up, consents and ingests a simulated population through the services
    (``population``: one already simulated, e.g. while the services started)."""
    if population is None:
        population = simulate_population(n_subjects, seed)
    out(f"simulated {len(population.subjects)} subjects, {len(population.records)} records "
        f"and {len(population.outcomes)} loan outcomes (seed {seed}, as of {population.as_of:%Y-%m-%d})")

    consent_ch = await suite.operator_channel("consent_service")
    ingest_ch = suite.channel("ingest_service")
    try:
        consent = consent_pb2_grpc.ConsentServiceStub(consent_ch)
        ingest = ingest_pb2_grpc.IngestServiceStub(ingest_ch)
        # Each producer is registered with the sources it may send and sends with
        # its own token.
        producer_tokens = {}
        producer_secrets: dict[str, str] = {}
        for producer, sources in PRODUCER_SOURCES.items():
            registered = await consent.RegisterProducer(consent_pb2.RegisterProducerRequest(
                request_id=f"demo-producer-{producer}-{uuid.uuid4().hex}", producer_id=producer,
                display_name=producer, sources=sources), timeout=10)
            producer_secrets[producer] = registered.credentials.client_secret
            producer_tokens[producer] = await issue_token(
                suite.addr("consent_service"), registered.credentials.client_id,
                registered.credentials.client_secret, tls=suite.tls)
            if suite.auth is not None:
                suite.auth._tokens[f"producer:{producer}"] = producer_tokens[producer]
        # Enroll and consent. Every 5th subject with external records withholds
        # consent for that source, so its external records are refused.
        with_external = [s.subject_id for s in population.subjects
                         if common_pb2.DATA_SOURCE_EXTERNAL in s.sources]
        withholding = set(with_external[::5])
        sem = asyncio.Semaphore(SIGNUP_CONCURRENCY)
        subject_secrets: dict[str, str] = {}

        async def enroll(subject: SimulatedSubject) -> None:
            sid = subject.subject_id
            grants = [(s, common_pb2.PURPOSE_CREDIT_SCORING) for s in (
                common_pb2.DATA_SOURCE_COMMERCE, common_pb2.DATA_SOURCE_PAYMENTS,
                common_pb2.DATA_SOURCE_IDENTITY, common_pb2.DATA_SOURCE_EXTERNAL)
                if not (sid in withholding and s == common_pb2.DATA_SOURCE_EXTERNAL)]
            # Model development (training scorecards) is a purpose of its own,
            # asked separately: the same sources, and the loan outcomes.
            grants += [(s, common_pb2.PURPOSE_MODEL_DEVELOPMENT) for s, _ in list(grants)]
            grants.append((common_pb2.DATA_SOURCE_OUTCOMES, common_pb2.PURPOSE_MODEL_DEVELOPMENT))
            # One call: the enrollment carries the consents given at sign-up.
            async with sem:
                enrolled = await consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
                    request_id=f"demo-enroll-{sid}", subject_id=sid,
                    consents=[consent_pb2.InitialConsent(source=source, purpose=purpose)
                              for source, purpose in grants]), timeout=SETUP_CALL_TIMEOUT)
            if len(enrolled.consents) != len(grants):
                raise RuntimeError(f"{sid}: {len(enrolled.consents)} consents granted of {len(grants)} asked")
            if enrolled.subject_secret:
                subject_secrets[sid] = enrolled.subject_secret

        t0 = time.perf_counter()
        await asyncio.gather(*(enroll(s) for s in population.subjects))
        out(f"enrolled and consented {len(population.subjects)} subjects in {time.perf_counter() - t0:.1f}s "
            "(one EnrollSubject each, with its consents)")

        statuses: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        sent = 0
        accepted_for_features = 0
        t0 = time.perf_counter()
        by_producer = population.by_producer()
        # The wallet's first batch is sent again below.
        first_batch = ("wallet", sorted(by_producer["wallet"], key=lambda r: r.subject_id)[:BATCH])

        async def send(producer: str, in_time_order: list[records_pb2.Record]) -> None:
            nonlocal sent, accepted_for_features
            # A producer's history, subject by subject: a batch then touches a few
            # subjects, and the feature service rescores only those on each delivery
            # (in event-time order every batch touched nearly every subject).
            records = sorted(in_time_order, key=lambda r: r.subject_id)
            for start in range(0, len(records), BATCH):
                batch = records[start:start + BATCH]
                reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
                    request_id=f"demo-{producer}-{start}", producer_id=producer, records=batch),
                    metadata=bearer(producer_tokens[producer]), timeout=30)
                sent += len(batch)
                for record, result in zip(batch, reply.results, strict=True):
                    statuses[ingest_pb2.RecordStatus.Name(result.status)] += 1
                    if (result.status == ingest_pb2.RECORD_STATUS_ACCEPTED
                            and record.WhichOneof("body") != "loan_outcome"):
                        accepted_for_features += 1
                    if result.reason:
                        reasons[result.reason] += 1

        # The producers send at the same time, each its batches one after the other.
        await asyncio.gather(*(send(producer, records) for producer, records in sorted(by_producer.items())))
        seconds = time.perf_counter() - t0
        # The wallet's first batch again, under a new request id: stored once,
        # every record answered DUPLICATE.
        producer, batch = first_batch
        reply = await ingest.IngestRecords(ingest_pb2.IngestRecordsRequest(
            request_id="demo-resend", producer_id=producer, records=batch),
            metadata=bearer(producer_tokens[producer]), timeout=30)
        resent_statuses = Counter(ingest_pb2.RecordStatus.Name(r.status) for r in reply.results)
    finally:
        await consent_ch.close()
        await ingest_ch.close()
    return population, LoadReport(len(population.subjects), sent, statuses, reasons, seconds,
                                  len(batch), resent_statuses, accepted_for_features, subject_secrets,
                                  producer_secrets)


class NotApplied(TimeoutError):
    """The feature service had not applied every record in time."""


async def wait_features(suite: Suite, population: Population, expected: int, timeout: float = 120.0) -> int:
    """Waits until the feature service has applied ``expected`` records in all,
    reading the subjects' vectors in batches (``GetFeatureVectors``); returns the
    count. ``NotApplied`` after ``timeout``: what follows (lookups, figures) must not
    run against half-applied features."""
    channel = await suite.operator_channel("feature_service")
    ids = [s.subject_id for s in population.subjects]
    applied = 0
    try:
        stub = feature_pb2_grpc.FeatureServiceStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            replies = await asyncio.gather(*(
                stub.GetFeatureVectors(feature_pb2.GetFeatureVectorsRequest(subject_ids=ids[i:i + 256]), timeout=10)
                for i in range(0, len(ids), 256)))
            applied = sum(v.record_count for r in replies for v in r.feature_vectors)
            if applied >= expected:
                return applied
            if time.monotonic() > deadline:
                raise NotApplied(f"the feature service applied {applied} of {expected} records in {timeout:.0f}s")
            await asyncio.sleep(0.1)
    finally:
        await channel.close()


def _band(band: common_pb2.ScoreBand.ValueType) -> str:
    return common_pb2.ScoreBand.Name(band).removeprefix("SCORE_BAND_").replace("_", " ").lower()


@dataclass
class Partner:
    partner_id: str
    token: str
    #: Its client secret, shown once by its registration.
    secret: str = ""


async def register_partner(suite: Suite, subject_ids: list[str], out: Out = print) -> Partner:
    """Registers the demo partner, has every subject of ``subject_ids`` authorize it
    (``PARTNER_PURPOSES``), and returns it with its token."""
    channel = await suite.operator_channel("consent_service")
    try:
        consent = consent_pb2_grpc.ConsentServiceStub(channel)
        registered = await consent.RegisterPartner(consent_pb2.RegisterPartnerRequest(
            request_id=f"demo-partner-{uuid.uuid4().hex}", partner_id=DEMO_PARTNER,
            display_name="Demo Lender"), timeout=10)
        sem = asyncio.Semaphore(SIGNUP_CONCURRENCY)  # concurrent grants are committed together

        async def authorize(sid: str) -> None:
            async with sem:
                for purpose, scope in PARTNER_PURPOSES:
                    await consent.GrantAuthorization(consent_pb2.GrantAuthorizationRequest(
                        request_id=f"demo-auth-{sid}-{purpose}", subject_id=sid, partner_id=DEMO_PARTNER,
                        purpose=purpose, scope=scope), timeout=10)

        await asyncio.gather(*(authorize(sid) for sid in subject_ids))
    finally:
        await channel.close()
    token = await issue_token(suite.addr("consent_service"), registered.credentials.client_id,
                              registered.credentials.client_secret, tls=suite.tls)
    out(f"registered partner {DEMO_PARTNER}; {len(subject_ids)} subjects authorized it for credit "
        "applications (full score) and rentals (threshold only)")
    return Partner(DEMO_PARTNER, token, registered.credentials.client_secret)


async def revoke(
    suite: Suite, subject_id: str, partner_id: str, purpose: common_pb2.AccessPurpose.ValueType
) -> None:
    """The subject revokes the partner's authorization for ``purpose``."""
    channel = await suite.operator_channel("consent_service")
    try:
        await consent_pb2_grpc.ConsentServiceStub(channel).RevokeAuthorization(
            consent_pb2.RevokeAuthorizationRequest(
                request_id=f"demo-revoke-{subject_id}-{purpose}", subject_id=subject_id,
                partner_id=partner_id, purpose=purpose), timeout=10)
    finally:
        await channel.close()


async def access_log_size(suite: Suite, subject_id: str) -> int:
    """How many entries the subject's access log lists."""
    channel = await suite.operator_channel("consent_service")
    try:
        stub = consent_pb2_grpc.ConsentServiceStub(channel)
        count, token = 0, ""
        while True:
            page = await stub.ListAccessLog(consent_pb2.ListAccessLogRequest(
                subject_id=subject_id, page_size=100, page_token=token), timeout=10)
            count += len(page.entries)
            token = page.next_page_token
            if not token:
                return count
    finally:
        await channel.close()


def _refusal(exc: grpc.aio.AioRpcError) -> str:
    err = CallError.from_rpc_error(exc)
    return f"{err.code.name} [{err.reason}] {err.message}"


async def lookups(
    gateway_addr: str,
    subject_ids: list[str],
    *,
    token: str | None = None,
    purpose: common_pb2.AccessPurpose.ValueType = common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
    transaction_ids: list[str] | None = None,
    out: Out = print,
) -> list[gateway_pb2.CreditScore]:
    """Looks each subject's full score up through the gateway at ``gateway_addr`` as
    the partner whose ``token`` it is (default ``CREDITSCORE_TOKEN``), each call with
    its own transaction id (or those given), and prints the answer."""
    channel = tool_channel(gateway_addr, token)
    results = []
    try:
        stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
        for i, sid in enumerate(subject_ids):
            txn = transaction_ids[i] if transaction_ids else f"demo-{uuid.uuid4().hex}"
            t0 = time.perf_counter()
            try:
                reply = await stub.GetCreditScore(gateway_pb2.GetCreditScoreRequest(
                    subject_id=sid, purpose=purpose, transaction_id=txn), timeout=3)
            except grpc.aio.AioRpcError as exc:
                out(f"  {sid:<14} {_refusal(exc)}")
                continue
            ms = (time.perf_counter() - t0) * 1000
            cs = reply.credit_score
            results.append(cs)
            if cs.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA:
                out(f"  {sid:<14} INSUFFICIENT_DATA  model {cs.model_version}  {ms:.1f} ms")
                continue
            out(f"  {sid:<14} score {cs.score}  {_band(cs.band):<9}  model {cs.model_version}  {ms:.1f} ms")
            for reason in cs.reasons:
                out(f"  {'':<14}   - {reason.code}: {reason.text} (-{reason.points_lost:.0f} pts)")
    finally:
        await channel.close()
    return results


async def threshold_checks(
    gateway_addr: str,
    subject_ids: list[str],
    threshold: int,
    *,
    token: str | None = None,
    purpose: common_pb2.AccessPurpose.ValueType = common_pb2.ACCESS_PURPOSE_RENTAL,
    out: Out = print,
) -> list[gateway_pb2.CheckCreditThresholdResponse]:
    """Asks, for each subject, only whether the score meets ``threshold``."""
    channel = tool_channel(gateway_addr, token)
    results = []
    try:
        stub = gateway_pb2_grpc.CreditScoreServiceStub(channel)
        for sid in subject_ids:
            try:
                reply = await stub.CheckCreditThreshold(gateway_pb2.CheckCreditThresholdRequest(
                    subject_id=sid, purpose=purpose, threshold=threshold,
                    transaction_id=f"demo-{uuid.uuid4().hex}"), timeout=3)
            except grpc.aio.AioRpcError as exc:
                out(f"  {sid:<14} {_refusal(exc)}")
                continue
            results.append(reply)
            decision = common_pb2.ThresholdDecision.Name(reply.decision).removeprefix("THRESHOLD_DECISION_")
            out(f"  {sid:<14} threshold {threshold}: {decision}")
    finally:
        await channel.close()
    return results


async def subject_view(
    gateway_addr: str, subject_id: str, secret: str, *, tls: TlsSettings | None = None, out: Out = print
) -> subject_pb2.GetMyScoreResponse:
    """The subject's own calls through the gateway: a subject token for the secret
    shown at enrollment (TokenService), the score with its advice (GetMyScore),
    who looked it up (ListMyAccessLog)."""
    async with create_channel(gateway_addr, tls=tls) as channel:
        issued = await subject_pb2_grpc.TokenServiceStub(channel).IssueToken(
            subject_pb2.IssueTokenRequest(client_id=subject_id, client_secret=secret), timeout=10)
        stub, me = subject_pb2_grpc.SubjectServiceStub(channel), bearer(issued.token)
        mine = await stub.GetMyScore(subject_pb2.GetMyScoreRequest(), metadata=me, timeout=5)
        log = await stub.ListMyAccessLog(subject_pb2.ListMyAccessLogRequest(page_size=5), metadata=me, timeout=5)
    cs = mine.credit_score
    scored = (f"score {cs.score} {_band(cs.band)}, probability of a bad outcome {cs.probability_of_bad:.1%}"
              if cs.state == common_pb2.SCORE_STATE_SCORED else "INSUFFICIENT_DATA")
    out(f"  {subject_id} (a token of kind {issued.kind}): {scored}, data on {cs.coverage:.0%} of the features")
    for tip in cs.improvements[:2]:
        out(f"    to improve: {tip.text} (about +{tip.points_gain:.0f} pts)")
    for entry in log.entries:
        out(f"    looked up by {entry.partner_name} for "
            f"{common_pb2.AccessPurpose.Name(entry.purpose).removeprefix('ACCESS_PURPOSE_').lower()} "
            f"({entry.answer.WhichOneof('answer')}), transaction {entry.transaction_id}")
    return mine


def _pick_subjects(population: Population, k: int = 6) -> list[str]:
    """A spread of subjects: by latent creditworthiness, plus a thin file."""
    ranked = sorted(population.subjects, key=lambda s: s.latent)
    picks = list(dict.fromkeys(
        ranked[int(q * (len(ranked) - 1))].subject_id for q in (0.03, 0.25, 0.5, 0.75, 0.97)))
    # Each subject once: one picked twice would be looked up twice, and its access
    # log would list more than the demo says.
    thin = [s.subject_id for s in population.subjects if len(s.sources) <= 1 and s.subject_id not in picks]
    return (picks + thin[:1])[:k]


async def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    t_start = time.perf_counter()
    try:
        suite = start_suite(data_dir, args.base_port)
    except PortsTaken as exc:
        print(f"creditscore run: {exc}", file=sys.stderr)
        return 2
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    # The population is simulated while the services start (a thread: the wait is idle).
    simulated = asyncio.ensure_future(asyncio.to_thread(simulate_population, args.subjects, args.seed))
    try:
        await wait_serving(suite)
        print("services SERVING: " + ", ".join(f"{p} on {suite.ports[p]}" for p, _ in SERVICES)
              + f" ({time.perf_counter() - t_start:.1f}s from start)")
        t_stage = time.perf_counter()
        population, report = await load_population(suite, args.subjects, args.seed, population=await simulated)
        print(f"ingested {report.sent} records in {report.seconds:.1f}s "
              f"({report.sent / report.seconds:,.0f} records/s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
              + ("; rejected because " + ", ".join(f"{k} {v}" for k, v in sorted(report.reasons.items()))
                 if report.reasons else ""))
        print(f"sent {report.resent} of them again: "
              + ", ".join(f"{k} {v}" for k, v in sorted(report.resent_statuses.items())))
        t_wait = time.perf_counter()
        applied = await wait_features(suite, population, report.accepted_for_features)
        print(f"feature service applied {applied} of {report.accepted_for_features} records "
              "delivered through the outbox (loan outcomes are labels and stay in ingest); "
              f"waited {time.perf_counter() - t_wait:.1f}s after the last batch "
              f"(population loaded and applied in {time.perf_counter() - t_stage:.1f}s)")
        t_stage = time.perf_counter()
        partner = await register_partner(suite, [s.subject_id for s in population.subjects])
        print(f"  (partner registered and authorized in {time.perf_counter() - t_stage:.1f}s)")
        keys = data_dir / "keys"
        token_file = keys / "partner.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(partner.token)
        gateway_addr = suite.addr("gateway")
        ids = _pick_subjects(population)
        # Credentials a newcomer keeps using after the 15-minute tokens expire:
        # creditscore token --credentials <file>.
        write_credentials(keys, f"partner-{partner.partner_id}", partner.partner_id, partner.secret, "partner")
        for producer, secret in sorted(report.producer_secrets.items()):
            write_credentials(keys, f"producer-{producer}", producer, secret, "producer")
        for sid in ids:
            if sid in report.subject_secrets:
                write_credentials(keys, f"subject-{sid}", sid, report.subject_secrets[sid], "subject")
        print(f"{partner.partner_id}'s score lookups through the gateway (CreditScoreService/GetCreditScore, "
              "purpose CREDIT_APPLICATION, full score):")
        await lookups(gateway_addr, ids, token=partner.token)
        print(f"{partner.partner_id}'s threshold questions (CheckCreditThreshold, purpose RENTAL, "
              f"threshold {RENTAL_THRESHOLD}): yes, no or insufficient data, nothing else:")
        await threshold_checks(gateway_addr, ids[:4], RENTAL_THRESHOLD, token=partner.token)
        print("the same transaction id twice: the same answer, written to the access log once:")
        for _ in range(2):
            await lookups(gateway_addr, ids[:1], token=partner.token, transaction_ids=["demo-replayed-1"])
        entries = await access_log_size(suite, ids[0])
        print(f"  {ids[0]}'s access log lists {entries} lookups (one full score, one threshold, one replayed)")
        revoked = ids[1]
        await revoke(suite, revoked, partner.partner_id, common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION)
        print(f"refused alike: {revoked} just revoked the authorization; not-enrolled-1 does not exist; "
              f"{ids[2]} authorized rentals only as a threshold:")
        await lookups(gateway_addr, [revoked, "not-enrolled-1"], token=partner.token)
        await lookups(gateway_addr, [ids[2]], token=partner.token, purpose=common_pb2.ACCESS_PURPOSE_RENTAL)
        print(f"{ids[0]}'s own view (SubjectService/GetMyScore and ListMyAccessLog, with a subject token "
              "for the secret shown at enrollment, from TokenService/IssueToken):")
        await subject_view(gateway_addr, ids[0], report.subject_secrets[ids[0]], tls=suite.tls)
        print(f"ready in {time.perf_counter() - t_start:.1f}s from start")
        if args.no_serve:
            return 0
        request = json.dumps(
            {"subject_id": ids[2], "purpose": "ACCESS_PURPOSE_CREDIT_APPLICATION", "transaction_id": "try-1"}
        )
        partner_file = keys / f"partner-{partner.partner_id}.json"
        print(f"\nserving until interrupted (Ctrl-C). Try, as the partner (its token, valid 15 minutes, "
              f"is in {token_file}):\n"
              f"  .venv/bin/grpcurl -plaintext 127.0.0.1:{suite.ports['gateway']} list\n"
              f"  .venv/bin/grpcurl -plaintext -H \"authorization: Bearer $(cat {token_file})\" "
              f"-d '{request}' "
              f"127.0.0.1:{suite.ports['gateway']} creditscore.gateway.v1.CreditScoreService/GetCreditScore\n"
              f"a fresh token once it has expired (the partner's credentials are in {partner_file}):\n"
              f"  .venv/bin/creditscore token --credentials {partner_file} "
              f"--gateway 127.0.0.1:{suite.ports['gateway']} > {token_file}\n"
              f"credentials kept in {keys}/: partner-*.json (the partner), producer-*.json (each producer), "
              f"subject-*.json ({len(ids)} subjects, the looked-up ones), service-credentials (the "
              f"services' identities)\n"
              f"logs in {data_dir / 'logs'}/")
        crashed = asyncio.create_task(_watch(suite))
        stopped = asyncio.create_task(stop_requested.wait())
        done, _ = await asyncio.wait({crashed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (crashed, stopped):
            task.cancel()
        if crashed in done:
            print("a service exited unexpectedly; stopping the others", file=sys.stderr)
            return 1
        return 0
    finally:
        print("stopping services ...")
        codes = suite.stop()
        print("stopped: " + ", ".join(f"{p} exit {c}" for p, c in codes.items()))


async def _watch(suite: Suite) -> None:
    while all(p.poll() is None for p in suite.procs.values()):
        await asyncio.sleep(0.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subjects", type=int, default=400, help="simulated subjects (default 400)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument("--data-dir", default="var/demo", help="SQLite files and logs (wiped at start)")
    parser.add_argument("--base-port", type=int, default=None,
                        help="gateway port; the others follow it (default 50050; 0 = free ports)")
    parser.add_argument("--no-serve", action="store_true", help="stop after the lookups")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="creditscore run", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return asyncio.run(run(parser.parse_args(argv)))
