"""Authentication in the manifests (issue 5): every service requires tokens; the
token key pair and the service identities come from Secrets of the shapes
docs/deploy.md documents, mounted or referenced where each service reads them, and
nowhere else. The last test starts the five servers from the dev variant's rendered
environment, with Secrets made as docs/deploy.md says, and looks a score up."""

from __future__ import annotations

import dataclasses
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from creditscore.common.v1 import common_pb2
from creditscore.demo import DemoAuth, Suite, _free_port, load_population, register_partner, wait_features
from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import TokenSource, create_channel, from_env
from tests.k8s.manifests import (
    K8S,
    ROOT,
    VARIANTS,
    Rendered,
    container_env,
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
#: IssueToken (consent signs its own; scoring calls no one).
CALLERS = {"gateway", "ingest", "feature"}
#: The files each service reads, by variable, and the Secret key each must be.
FILES = {
    "consent": {"TOKEN_SIGNING_KEY_FILE": SIGNING_KEY, "SERVICE_CREDENTIALS_FILE": IDENTITIES},
    **{name: {"TOKEN_PUBLIC_KEY_FILE": PUBLIC_KEY} for name in ("gateway", "ingest", "feature", "scoring")},
}


#: Where the auth Secrets are mounted, a folder each (the file settings above point into them).
AUTH_MOUNTS = {
    "consent": {"/etc/creditscore/token-signing-key", "/etc/creditscore/service-identities"},
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
    plain = {name: secrets.token_hex(32) for name in ("gateway", "ingest", "feature", "operator")}
    lines = "".join(f"{name} {_hash_secret(secret)}\n" for name, secret in plain.items())
    cluster = {
        "token-signing-key": {"token-signing.pem": (folder / "token-signing.pem").read_bytes()},
        "token-public-key": {"token-public.pem": (folder / "token-public.pem").read_bytes()},
        "service-identities": {"service-credentials": lines.encode()},
        "gateway-service-identity": {"SERVICE_CLIENT_SECRET": plain["gateway"].encode()},
        "ingest-service-identity": {"SERVICE_CLIENT_SECRET": plain["ingest"].encode()},
        "feature-service-identity": {"SERVICE_CLIENT_SECRET": plain["feature"].encode()},
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


async def test_the_dev_pods_start_and_authenticate_with_the_documented_secrets(tmp_path):
    """The five servers built from the dev variant's environment (ConfigMaps, Secret
    references, mounts), with the Secrets docs/deploy.md creates: the operator's
    identity registers producers and a partner; producers send records (ingest ->
    consent and feature with ingest's identity; feature -> scoring with its own);
    the partner looks a score up (gateway -> consent, feature, scoring with the
    gateway's identity)."""
    import consent_service.config, consent_service.server  # noqa: E401
    import feature_service.config, feature_service.server  # noqa: E401
    import gateway.config, gateway.server  # noqa: E401
    import ingest_service.config, ingest_service.server  # noqa: E401
    import scoring_service.config, scoring_service.server  # noqa: E401

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
        async with create_channel(suite.addr("gateway"), tokens=TokenSource.static(partner.token)) as channel:
            reply = await gateway_pb2_grpc.CreditScoreServiceStub(channel).GetCreditScore(
                gateway_pb2.GetCreditScoreRequest(subject_id=ids[0], purpose=common_pb2.ACCESS_PURPOSE_CREDIT_APPLICATION,
                                                  transaction_id="k8s-1"),
                timeout=10)
        assert reply.credit_score.model_version
    finally:
        for package in reversed(list(handles)):
            await handles[package].stop(0)

