"""The Kubernetes manifests as data: render a kustomize variant with kubectl and
answer questions about the objects (which pods a selector picks, what a container's
environment holds, which connections the NetworkPolicies allow)."""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
VARIANTS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "production": K8S / "overlays" / "production"}

Obj = dict[str, Any]


def kubectl() -> str | None:
    """kubectl on PATH, else the one .ci/run installs into the virtualenv."""
    found = shutil.which("kubectl")
    if found:
        return found
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


@functools.cache
def _render(variant: str) -> tuple[Obj, ...]:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl is not installed: the manifests cannot be rendered (.ci/run installs it)")
    out = subprocess.run(
        [binary, "kustomize", str(VARIANTS[variant])], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"kubectl kustomize {variant} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


class Rendered:
    """The objects of one rendered variant."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.objects = list(_render(variant))

    def of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj | None:
        for o in self.of(kind):
            if o["metadata"]["name"] == name:
                return o
        return None

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of(kind)}

    def workloads(self) -> list[Obj]:
        """Deployments and Jobs: everything that makes pods."""
        return self.of("Deployment") + self.of("Job")

    def namespace_of(self, obj: Obj) -> str:
        return obj["metadata"].get("namespace", "default")


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels", {}))


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against labels; an empty
    selector selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def container_env(rendered: Rendered, workload: Obj, container: Obj) -> dict[str, str | None]:
    """The container's environment as the kubelet builds it: envFrom ConfigMaps
    first, then env (which wins); values from a Secret or the downward API are None."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            cm = rendered.get("ConfigMap", ref["name"])
            assert cm is not None, f"{workload['metadata']['name']}: no ConfigMap {ref['name']}"
            env.update(cm.get("data", {}))
    for item in container.get("env", []):
        env[item["name"]] = item.get("value") if "valueFrom" not in item else None
    return env


def secret_refs(workload: Obj) -> set[tuple[str, str]]:
    """Every (Secret, key) the workload's pods read: Secret volumes (the keys they
    project; all keys, "*", when they project everything) and env/envFrom
    secretKeyRef/secretRef, over every container."""
    refs: set[tuple[str, str]] = set()
    for volume in pod_spec(workload).get("volumes", []):
        secret = volume.get("secret")
        if secret:
            items = secret.get("items")
            refs |= {(secret["secretName"], i["key"]) for i in items} if items else {(secret["secretName"], "*")}
    for c in containers(workload):
        for item in c.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                refs.add((source["secretRef"]["name"], "*"))
    return refs


def mount_of(workload: Obj, container: Obj, path: str) -> tuple[Obj, Obj, str]:
    """The volume mount a file path lies under (the deepest), its volume, and the
    path relative to the mount; AssertionError when it lies under none."""
    candidates = [m for m in container.get("volumeMounts", [])
                  if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert candidates, f"{workload['metadata']['name']}: {path} is under no volume mount"
    mount = max(candidates, key=lambda m: len(m["mountPath"]))
    [volume] = [v for v in pod_spec(workload).get("volumes", []) if v["name"] == mount["name"]]
    return mount, volume, path[len(mount["mountPath"].rstrip("/")) + 1:]


def secret_file(workload: Obj, container: Obj, path: str) -> tuple[str, str]:
    """The (Secret, key) whose content the file at ``path`` is; AssertionError when
    the path is not a file projected from a Secret volume."""
    mount, volume, relative = mount_of(workload, container, path)
    secret = volume.get("secret")
    assert secret, f"{workload['metadata']['name']}: {path} is on volume {volume['name']}, not a Secret"
    assert "subPath" not in mount, "a subPath mount never sees the Secret change"
    items = secret.get("items")
    if not items:
        return secret["secretName"], relative
    keys = [i["key"] for i in items if i["path"] == relative]
    assert keys, f"{workload['metadata']['name']}: {path}: Secret {secret['secretName']} projects no {relative}"
    return secret["secretName"], keys[0]


# --- NetworkPolicy evaluation ----------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """Something that can open or accept a connection: a pod of the variant, or a
    stand-in for the world around it."""

    name: str
    namespace: str | None  # None: not a pod (an address outside the cluster)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    ports: frozenset[tuple[int, str]] = frozenset()  # (port, protocol) it listens on
    named_ports: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    ip: str | None = None
    governed: bool = False  # the variant's NetworkPolicies apply to it


def namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


# The world around the variant's pods.
OUTSIDE = Peer("outside", None, ip="203.0.113.10")  # partners, producers, the internet
OTHER_POD = Peer("other-namespace-pod", "elsewhere", labels={"app": "prometheus"})  # ingress controller, Prometheus
KUBE_DNS = Peer("kube-dns", "kube-system", labels={"k8s-app": "kube-dns"},
                ports=frozenset({(53, "UDP"), (53, "TCP")}))
POSTGRES = Peer("postgres", None, ports=frozenset({(5432, "TCP")}), ip="198.51.100.5")


def workload_peers(rendered: Rendered) -> list[Peer]:
    peers = []
    for w in rendered.workloads():
        ports: set[tuple[int, str]] = set()
        named: dict[str, int] = {}
        for c in containers(w):
            for p in c.get("ports", []):
                ports.add((p["containerPort"], p.get("protocol", "TCP")))
                if "name" in p:
                    named[p["name"]] = p["containerPort"]
        peers.append(Peer(w["metadata"]["name"], rendered.namespace_of(w), pod_labels(w),
                          frozenset(ports), named, governed=True))
    return peers


def _peer_matches(entry: Obj, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in entry:
        if peer.ip is None:  # pod addresses: ipBlock semantics vary by plugin; count as no match
            return False
        address = ipaddress.ip_address(peer.ip)
        block = entry["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.namespace is None:
        return False
    if "namespaceSelector" in entry:
        if not selects(entry["namespaceSelector"], namespace_labels(peer.namespace)):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return selects(entry.get("podSelector"), peer.labels)


def _port_matches(entry: Obj, port: int, protocol: str, target: Peer) -> bool:
    if entry.get("protocol", "TCP") != protocol:
        return False
    if "port" not in entry:
        return True
    wanted = entry["port"]
    if isinstance(wanted, str):
        if wanted not in target.named_ports:
            return False
        wanted = target.named_ports[wanted]
    end = entry.get("endPort", wanted)
    return wanted <= port <= end


def _rule_allows(rule: Obj, peers_key: str, other: Peer, port: int, protocol: str,
                 target: Peer, namespace: str) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(_peer_matches(p, other, namespace) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(_port_matches(p, port, protocol, target) for p in ports)


def _policy_types(policy: Obj) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress"] + (["Egress"] if "egress" in spec else [])


def _allowed(rendered: Rendered, direction: str, subject: Peer, other: Peer, port: int,
             protocol: str, target: Peer) -> bool:
    """May ``subject`` (a governed pod) send (Egress) to / accept (Ingress) from
    ``other`` on ``port``? ``target`` is the pod whose port it is."""
    if not subject.governed:
        return True
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    isolated = False
    for policy in rendered.of("NetworkPolicy"):
        namespace = rendered.namespace_of(policy)
        if namespace != subject.namespace or not selects(policy["spec"]["podSelector"], subject.labels):
            continue
        if direction not in _policy_types(policy):
            continue
        isolated = True
        for rule in policy["spec"].get(rules_key) or []:
            if _rule_allows(rule, peers_key, other, port, protocol, target, namespace):
                return True
    return not isolated


def allowed_edges(rendered: Rendered) -> set[tuple[str, str, int, str]]:
    """Every (source, destination, port, protocol) that the NetworkPolicies let
    through, over the variant's pods and the stand-ins for the world around them;
    destinations are taken only on the ports they listen on."""
    pods = workload_peers(rendered)
    sources = [*pods, OUTSIDE, OTHER_POD]
    destinations = [*pods, KUBE_DNS, POSTGRES]
    edges = set()
    for src in sources:
        for dst in destinations:
            if src.name == dst.name or not (src.governed or dst.governed):
                continue  # the world talking to itself is not the variant's business
            for port, protocol in dst.ports:
                if (_allowed(rendered, "Egress", src, dst, port, protocol, dst)
                        and _allowed(rendered, "Ingress", dst, src, port, protocol, dst)):
                    edges.add((src.name, dst.name, port, protocol))
    return edges


# --- small helpers -----------------------------------------------------------------

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}


def quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def env_references(value: str) -> Iterator[str]:
    """The $(VAR) references Kubernetes expands in an env value."""
    yield from re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", value)


def flatten(items: Iterable[Iterable[Any]]) -> list[Any]:
    return [x for group in items for x in group]
