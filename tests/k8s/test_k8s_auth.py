"""Authentication in the manifests (issue 5): every service requires tokens; the
token key pair and the service identities come from Secrets of the shapes
docs/deploy.md documents, mounted or referenced where each service reads them, and
nowhere else. The last test starts the five servers from the dev variant's rendered
environment, with Secrets made as docs/deploy.md says, looks a score up, rotates the
signing key by the steps docs/deploy.md gives, and revokes a token."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import jwt
import pytest

from creditscore.cli.run import DemoAuth, Suite, _free_port, load_population, register_partner, wait_features
from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import CallError, KeyRing, TokenSource, create_channel, from_env
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from tests.k8s.manifests import (
    K8S,
    ROOT,
    VARIANTS,
    Rendered,
    container_env,
    containers,
    mount_of,
    pod_spec,
    secret_file,
    secret_refs,
)
from tests.k8s.test_k8s_manifests import SERVICES, WITH_DATABASE, package_of, service_deployments, the_server

DOCS = ROOT / "docs" / "deploy.md"

PUBLIC_KEY = ("token-public-key", "token-public.pem")
SIGNING_KEY = ("token-signing-key", "token-signing.pem")
IDENTITIES = ("service-identities", "service-credentials")


def identity(service: str) -> tuple[str, str]:
    return (f"{service}-service-identity", "SERVICE_CLIENT_SECRET")


#: The services that call others with tokens fetched from the consent service's
#: IssueToken: every one but consent (which signs its own) polls at least the
#: consent service's revocation list (ListRevocations) with them.
CALLERS = {"gateway", "ingest", "feature", "scoring"}
#: The files each service reads, by variable, and the Secret key each must be. Every
#: service reads the published public key ring: the consent service to refuse a
#: signing key the others could not verify (at start, and before switching to a new one).
FILES = {
    "consent": {"TOKEN_SIGNING_KEY_FILE": SIGNING_KEY, "SERVICE_CREDENTIALS_FILE": IDENTITIES,
                "TOKEN_PUBLIC_KEY_FILE": PUBLIC_KEY},
    **{name: {"TOKEN_PUBLIC_KEY_FILE": PUBLIC_KEY} for name in ("gateway", "ingest", "feature", "scoring")},
}


#: Where the auth Secrets are mounted, a folder each (the file settings above point into them).
AUTH_MOUNTS = {
    "consent": {"/etc/creditscore/token-signing-key", "/etc/creditscore/service-identities",
                "/etc/creditscore/token-public-key"},
    **{name: {"/etc/creditscore/token-public-key"} for name in ("gateway", "ingest", "feature", "scoring")},
}


def expected_secrets(variant: str, workload: str) -> set[tuple[str, str]]:
    """Every (Secret, key) a workload's pods may read: nothing else, so that the
    signing key and the identities stay in the consent pod."""
    if workload.endswith("-migrate"):  # the migration Jobs: their database, nothing of auth
        return {(f"{workload.removesuffix('-migrate')}-database", "DATABASE_URL")}
    if workload not in SERVICES:
        return set()  # the collector
    refs = set(FILES[workload].values())
    if workload in CALLERS:
        refs.add(identity(workload))
    if variant == "production" and workload in WITH_DATABASE:
        refs.add((f"{workload}-database", "DATABASE_URL"))
    return refs


def expected_mounts(variant: str, name: str) -> set[str]:
    mounts = {"/tmp"} | AUTH_MOUNTS[name]
    if variant == "dev" and name in WITH_DATABASE:
        mounts.add("/var/lib/creditscore")
    return mounts


@pytest.fixture(params=list(VARIANTS))
def rendered(request) -> Rendered:
    return Rendered(request.param)


def test_every_service_requires_tokens(rendered):
    for d in service_deployments(rendered):
        env = container_env(rendered, d, the_server(d))
        assert env.get("AUTH_MODE") == "required", d["metadata"]["name"]


def test_each_file_setting_is_a_file_of_its_secret(rendered):
    for d in service_deployments(rendered):
        name, server = d["metadata"]["name"], the_server(d)
        env = container_env(rendered, d, server)
        files = {k: v for k, v in env.items() if k.endswith("_FILE") and v}
        assert set(files) == set(FILES[name]), name
        for variable, path in files.items():
            assert secret_file(d, server, path) == FILES[name][variable], (name, variable)
            mount, volume, _ = mount_of(d, server, path)
            assert mount.get("readOnly") is True, (name, mount["mountPath"])
            # Owner and group only (root and fsGroup): no other user of the node's
            # filesystem, and nothing the process could write.
            assert volume["secret"]["defaultMode"] & 0o337 == 0, (name, volume["name"])
            assert not volume["secret"].get("optional"), "a missing Secret must keep the pod from starting"
        if name == "consent":
            # The key comes from the Secret: never generated on a read-only root,
            # and never a different key per replica.
            assert env["TOKEN_KEY_GENERATE"] == "false"


def test_callers_present_their_own_identity(rendered):
    for d in service_deployments(rendered):
        name, server = d["metadata"]["name"], the_server(d)
        env = container_env(rendered, d, server)
        # Who fetches tokens from the consent service: whoever calls it.
        assert ("CONSENT_SERVICE_ADDR" in env) == (name in CALLERS), name
        if name in CALLERS:
            assert env["SERVICE_CLIENT_ID"] == name
            [item] = [e for e in server["env"] if e["name"] == "SERVICE_CLIENT_SECRET"]
            name_key = item["valueFrom"]["secretKeyRef"]
            assert (name_key["name"], name_key["key"]) == identity(name)
            assert not name_key.get("optional"), "a missing identity must keep the pod from starting"
        else:
            assert "SERVICE_CLIENT_ID" not in env and "SERVICE_CLIENT_SECRET" not in env, name


def test_each_pod_reads_exactly_its_secrets(rendered):
    """The signing key and the identities reach the consent pod only; the migration
    Jobs get their database and nothing of authentication."""
    for w in rendered.workloads():
        name = w["metadata"]["name"]
        assert secret_refs(w) == expected_secrets(rendered.variant, name), name


def test_every_mount_is_accounted_for(rendered):
    for d in service_deployments(rendered):
        name, server = d["metadata"]["name"], the_server(d)
        paths = [m["mountPath"].rstrip("/") for m in server["volumeMounts"]]
        assert set(paths) == expected_mounts(rendered.variant, name), name
        assert len(paths) == len(set(paths)), name
        for a in paths:  # no mount hides part of another
            assert not any(b != a and b.startswith(a + "/") for b in paths), (name, a)


def test_no_secret_volume_is_mounted_with_a_sub_path(rendered):
    """The kubelet never updates a subPath mount: a rotated key ring or signing key
    would never reach the pod."""
    for w in rendered.workloads():
        secret_volumes = {v["name"] for v in pod_spec(w).get("volumes", []) if "secret" in v}
        for c in containers(w):
            for mount in c.get("volumeMounts", []):
                if mount["name"] in secret_volumes:
                    assert "subPath" not in mount and "subPathExpr" not in mount, (
                        w["metadata"]["name"], mount["mountPath"])


def test_every_token_checking_service_reads_the_same_key_ring(rendered):
    """One published ring, the consent service's included (it refuses a signing key
    that is not in it), at the same path everywhere."""
    paths = set()
    for d in service_deployments(rendered):
        server = the_server(d)
        path = container_env(rendered, d, server)["TOKEN_PUBLIC_KEY_FILE"]
        assert secret_file(d, server, path) == PUBLIC_KEY, d["metadata"]["name"]
        paths.add(path)
    assert len(paths) == 1, paths


def test_no_secret_is_committed():
    for variant in VARIANTS:
        assert not Rendered(variant).of("Secret"), variant
    for kustomization in K8S.rglob("kustomization.yaml"):
        assert "secretGenerator" not in kustomization.read_text(), kustomization


def test_every_secret_is_documented_with_its_keys():
    """docs/deploy.md names each Secret the manifests read, its keys, and how to
    create it."""
    text = DOCS.read_text()
    referenced = set()
    for variant in VARIANTS:
        for w in Rendered(variant).workloads():
            referenced |= secret_refs(w)
    assert referenced, "no Secret referenced at all"
    for secret, key in sorted(referenced):
        assert f"`{secret}`" in text, f"docs/deploy.md does not name the Secret {secret}"
        assert f"`{key}`" in text, f"docs/deploy.md does not name the key {key} of {secret}"
        if not secret.endswith("-database"):  # those: one command shown, "and the 3 others"
            assert re.search(rf"create secret generic {re.escape(secret)}\b", text), (
                f"docs/deploy.md does not say how to create {secret}")


# --- the dev pods, started from their rendered environment --------------------------


def _hash_secret(secret: str) -> str:
    """``python -m consent_service hash-secret``, as docs/deploy.md runs it."""
    out = subprocess.run([sys.executable, "-m", "consent_service", "hash-secret"], input=secret + "\n",
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def documented_secrets(folder: Path) -> tuple[dict[str, dict[str, bytes]], dict[str, str]]:
    """The Secrets docs/deploy.md has the operator create, made the same way (the key
    pair with the project's own generator, its alternative to openssl), and the
    plain secrets of the identities."""
    from consent_service.tokens import generate_key_pair

    generate_key_pair(folder / "token-signing.pem", folder / "token-public.pem")
    plain = {name: secrets.token_hex(32) for name in ("gateway", "ingest", "feature", "scoring", "operator")}
    lines = "".join(f"{name} {_hash_secret(secret)}\n" for name, secret in plain.items())
    cluster = {
        "token-signing-key": {"token-signing.pem": (folder / "token-signing.pem").read_bytes()},
        "token-public-key": {"token-public.pem": (folder / "token-public.pem").read_bytes()},
        "service-identities": {"service-credentials": lines.encode()},
        "gateway-service-identity": {"SERVICE_CLIENT_SECRET": plain["gateway"].encode()},
        "ingest-service-identity": {"SERVICE_CLIENT_SECRET": plain["ingest"].encode()},
        "feature-service-identity": {"SERVICE_CLIENT_SECRET": plain["feature"].encode()},
        "scoring-service-identity": {"SERVICE_CLIENT_SECRET": plain["scoring"].encode()},
    }
    return cluster, plain


def pod_environment(rendered: Rendered, deployment: dict, cluster: dict, root: Path) -> dict[str, str]:
    """What the kubelet would give the server container, with its volumes made as
    folders under ``root`` (Secret volumes holding their projected keys) and every
    path into a mount moved there."""
    name, server = deployment["metadata"]["name"], the_server(deployment)
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    moved: dict[str, str] = {}
    for mount in server["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "persistentVolumeClaim" in volume:
            local = root / "claims" / volume["persistentVolumeClaim"]["claimName"]
        else:
            local = root / "pods" / name / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        if "secret" in volume:
            secret = cluster.get(volume["secret"]["secretName"])
            assert secret is not None, f"{name}: the docs create no Secret {volume['secret']['secretName']}"
            for item in volume["secret"]["items"]:
                assert item["key"] in secret, f"{name}: Secret {volume['secret']['secretName']} has no {item['key']}"
                (local / item["path"]).write_bytes(secret[item["key"]])
        moved[mount["mountPath"].rstrip("/")] = str(local)
    env: dict[str, str] = {}
    for key, value in container_env(rendered, deployment, server).items():
        if value is None:
            [item] = [e for e in server["env"] if e["name"] == key]
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] in cluster and ref["key"] in cluster[ref["name"]], (name, key)
            value = cluster[ref["name"]][ref["key"]].decode()
        env[key] = _moved(value, moved)
    return env


def _moved(value: str, moved: dict[str, str]) -> str:
    """``value`` with the mount it points into (the deepest, once) replaced by its folder."""
    for mount_path, local in sorted(moved.items(), key=lambda m: -len(m[0])):
        for prefix in ("", "sqlite:///"):
            if value.startswith(prefix + mount_path + "/"):
                return prefix + local + value[len(prefix + mount_path):]
    return value


def project(rendered: Rendered, root: Path, secret: str, key: str, content: bytes) -> list[Path]:
    """What the kubelet does once a changed Secret reaches the pods: every pod's
    projected file of ``key`` replaced by a new file moved into place (as its
    atomic ``..data`` swap), in the folders ``pod_environment`` made. The files."""
    files = []
    for d in rendered.of("Deployment"):
        for volume in pod_spec(d).get("volumes", []):
            source = volume.get("secret")
            if not source or source["secretName"] != secret:
                continue
            for item in source["items"]:
                if item["key"] == key:
                    target = root / "pods" / d["metadata"]["name"] / volume["name"] / item["path"]
                    staged = target.with_name(f".{target.name}.new")
                    staged.write_bytes(content)
                    os.replace(staged, target)
                    files.append(target)
    return files


async def eventually(check: Callable[[], object], timeout: float, what: str) -> object:
    """``check()`` (awaited when a coroutine) until it is truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        await asyncio.sleep(0.1)


def rings_reloaded(caplog: pytest.LogCaptureFixture, files: list[Path]) -> bool:
    """Every service logged that it re-read its ring file (docs/deploy.md has the
    operator look for that line)."""
    seen = " ".join(r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("token public keys") and " changed" in r.getMessage())
    return all(str(f) in seen for f in files)


def kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def refusal(call: Callable[[], object]) -> CallError | None:
    """The error ``call()`` ends with, None when it succeeds."""
    try:
        await call()
    except grpc.aio.AioRpcError as exc:
        return CallError.from_rpc_error(exc)
    return None


async def test_the_dev_pods_start_and_authenticate_with_the_documented_secrets(tmp_path, caplog):
    """The five servers built from the dev variant's environment (ConfigMaps, Secret
    references, mounts), with the Secrets docs/deploy.md creates: the operator's
    identity registers producers and a partner; producers send records (ingest ->
    consent and feature with ingest's identity; feature -> scoring with its own);
    the partner looks a score up (gateway -> consent, feature, scoring with the
    gateway's identity). Every service but consent keeps its revocation list with
    its own identity (scoring's: only the consent service).

    Then docs/deploy.md's "Rotating the token signing key", done on the files the
    pods mount: the new public key published beside the old one (every service
    re-reads it), the signing key replaced (consent switches), tokens of both keys
    accepted; the old public key retired, its tokens refused. And "Revoking tokens":
    an operator's RevokeToken reaches scoring within the bound."""
    from consent_service.tokens import generate_key_pair

    caplog.set_level(logging.INFO, logger="creditscore.runtime")
    import consent_service.config  # noqa: E401
    import consent_service.server
    import feature_service.config  # noqa: E401
    import feature_service.server
    import gateway.config  # noqa: E401
    import gateway.server
    import ingest_service.config  # noqa: E401
    import ingest_service.server
    import scoring_service.config  # noqa: E401
    import scoring_service.server

    modules = {
        "consent_service": (consent_service.config, consent_service.server),
        "feature_service": (feature_service.config, feature_service.server),
        "scoring_service": (scoring_service.config, scoring_service.server),
        "ingest_service": (ingest_service.config, ingest_service.server),
        "gateway": (gateway.config, gateway.server),
    }
    rendered = Rendered("dev")
    keys = tmp_path / "operator"
    keys.mkdir()
    cluster, plain = documented_secrets(keys)
    deployments = {package_of(d): d for d in service_deployments(rendered)}
    ports = {package: _free_port() for package in modules}
    handles = {}
    try:
        for package, (config, server) in modules.items():
            env = pod_environment(rendered, deployments[package], cluster, tmp_path)
            settings = from_env(config.Settings, env)
            changes: dict = {"server": dataclasses.replace(
                settings.server, host="127.0.0.1", port=ports[package], grace_seconds=1.0)}
            for field in dataclasses.fields(settings):
                if field.name.endswith("_service_addr"):
                    changes[field.name] = f"127.0.0.1:{ports[field.name.removesuffix('_addr')]}"
            settings = dataclasses.replace(settings, **changes)
            assert settings.auth.required
            handle = await server.build_server(settings)
            await handle.start()
            handles[package] = handle
        suite = Suite(data_dir=tmp_path, ports=ports, procs={},
                      auth=DemoAuth(keys, secrets={"operator": plain["operator"]}))
        population, report = await load_population(suite, 6, seed=11, out=lambda *_: None)
        assert report.accepted_for_features > 0
        await wait_features(suite, population, report.accepted_for_features, timeout=60)
        ids = [s.subject_id for s in population.subjects]
        partner = await register_partner(suite, ids, out=lambda *_: None)

        async def look_up(token: str, transaction_id: str) -> gateway_pb2.GetCreditScoreResponse:
            async with create_channel(suite.addr("gateway"), tokens=TokenSource.static(token)) as channel:
                return await gateway_pb2_grpc.CreditScoreServiceStub(channel).GetCreditScore(
                    gateway_pb2.GetCreditScoreRequest(
                        subject_id=ids[0], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                        transaction_id=transaction_id),
                    timeout=10)

        async def list_models(token: str) -> None:
            async with create_channel(suite.addr("scoring_service"), tokens=TokenSource.static(token)) as channel:
                scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
                await scoring.ListModels(scoring_pb2.ListModelsRequest(), timeout=10)

        async def operator_token() -> consent_pb2.IssueTokenResponse:
            async with create_channel(suite.addr("consent_service")) as channel:
                return await consent_pb2_grpc.ConsentServiceStub(channel).IssueToken(
                    consent_pb2.IssueTokenRequest(client_id="operator", client_secret=plain["operator"]), timeout=10)

        reply = await look_up(partner.token, "k8s-1")
        assert reply.credit_score.model_version

        # --- Rotating the token signing key ---
        old_public = cluster["token-public-key"]["token-public.pem"]
        [old_kid] = KeyRing.from_pem(old_public)
        assert kid(partner.token) == old_kid
        # 1. a new key pair
        generate_key_pair(keys / "new.pem", keys / "new.pub.pem")
        new_public = (keys / "new.pub.pem").read_bytes()
        [new_kid] = KeyRing.from_pem(new_public)
        # 2. publish: the ring holds the old key and the new one, in every pod (consent's too)
        caplog.clear()
        rings = project(rendered, tmp_path, "token-public-key", "token-public.pem", old_public + new_public)
        assert {f.parts[-3] for f in rings} == set(SERVICES)
        await eventually(lambda: rings_reloaded(caplog, rings), 15, "every service re-read the ring")
        # 3. switch: consent signs with the new key once it reads the file
        project(rendered, tmp_path, "token-signing-key", "token-signing.pem", (keys / "new.pem").read_bytes())

        async def signed_with_the_new_key() -> consent_pb2.IssueTokenResponse | None:
            issued = await operator_token()
            return issued if kid(issued.token) == new_kid else None

        new_token = (await eventually(signed_with_the_new_key, 15, "consent signs with the new key")).token
        # tokens of both keys are accepted everywhere meanwhile
        assert (await look_up(partner.token, "k8s-2")).credit_score.model_version
        await list_models(new_token)
        # 4. retire the old public key: its tokens are refused
        caplog.clear()
        rings = project(rendered, tmp_path, "token-public-key", "token-public.pem", new_public)
        await eventually(lambda: rings_reloaded(caplog, rings), 15, "every service re-read the ring")
        refused = await refusal(lambda: look_up(partner.token, "k8s-3"))
        assert refused is not None and (refused.code, refused.reason) == (
            grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"), refused
        await list_models(new_token)

        # --- Revoking tokens: RevokeToken reaches scoring (which polls with its own identity) ---
        keeper, doomed = await operator_token(), await operator_token()
        await list_models(doomed.token)
        async with create_channel(suite.addr("consent_service"), tokens=TokenSource.static(keeper.token)) as channel:
            await consent_pb2_grpc.ConsentServiceStub(channel).RevokeToken(consent_pb2.RevokeTokenRequest(
                request_id="k8s-revoke-1", token_id=doomed.token_id, note="tests/k8s"), timeout=10)
        # about REVOCATION_POLL_SECONDS (1 s) plus one poll; a generous margin for a busy machine
        refused = await eventually(lambda: refusal(lambda: list_models(doomed.token)), 5, "scoring refuses it")
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED"), refused
        await list_models(keeper.token)
    finally:
        for package in reversed(list(handles)):
            await handles[package].stop(0)

