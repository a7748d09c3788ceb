"""The NetworkPolicies allow exactly the call graph of DESIGN.md §2, computed from
the rendered policies of each variant (both ends of each connection must allow it)."""

from __future__ import annotations

import pytest

from tests.k8s.manifests import VARIANTS, Rendered, allowed_edges

SERVICES = ["gateway", "consent", "ingest", "feature", "scoring"]
WITH_DATABASE = ["consent", "ingest", "feature", "scoring"]
PORT = {"gateway": 50050, "consent": 50051, "ingest": 50052, "feature": 50053, "scoring": 50054}

# DESIGN.md §2: who calls whom.
CALLS = {
    "gateway": ["consent", "feature", "scoring"],  # authorize, features, score
    "ingest": ["consent", "feature"],  # consent check, the outbox
    "consent": ["ingest", "feature", "scoring"],  # purge on withdrawal
    "feature": ["consent", "scoring"],  # its token; subjects' materialized scores
    "scoring": ["consent"],  # its token; the revocation list
}
# Partners and apps reach only the gateway; producers only ingest. Both come from
# outside the cluster or through an ingress in another namespace.
FROM_OUTSIDE = ["gateway", "ingest"]
DNS = [(53, "UDP"), (53, "TCP")]


def expected_edges(variant: str) -> set[tuple[str, str, int, str]]:
    edges = set()
    for caller, callees in CALLS.items():
        edges |= {(caller, callee, PORT[callee], "TCP") for callee in callees}
    for source in ("outside", "other-namespace-pod"):
        edges |= {(source, service, PORT[service], "TCP") for service in FROM_OUTSIDE}
    pods = list(SERVICES)
    if variant == "production":
        migrations = [f"{name}-migrate" for name in WITH_DATABASE]
        pods += ["otel-collector", *migrations]
        edges |= {(name, "postgres", 5432, "TCP") for name in WITH_DATABASE + migrations}
        edges |= {(service, "otel-collector", 4317, "TCP") for service in SERVICES}
        # Prometheus scrapes the collector, wherever it runs.
        edges |= {(source, "otel-collector", 8889, "TCP") for source in ("outside", "other-namespace-pod")}
    edges |= {(pod, "kube-dns", port, protocol) for pod in pods for port, protocol in DNS}
    return edges


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_network_policies_allow_exactly_the_call_graph(variant):
    allowed = allowed_edges(Rendered(variant))
    expected = expected_edges(variant)
    assert allowed - expected == set(), "allowed but not in the call graph"
    assert expected - allowed == set(), "in the call graph but not allowed"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_pod_is_isolated_both_ways(variant):
    """Deny-all by default: a pod no policy covers would be open to everything."""
    rendered = Rendered(variant)
    [deny] = [p for p in rendered.of("NetworkPolicy") if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_evaluator_sees_an_open_door():
    """The check above can fail: a policy letting every pod reach ingest shows up."""
    rendered = Rendered("dev")
    rendered.objects = rendered.objects + [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "too-open", "namespace": "creditscore-dev"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }]
    extra = allowed_edges(rendered) - expected_edges("dev")
    assert ("gateway", "ingest", 50052, "TCP") in extra
    assert ("scoring", "postgres", 5432, "TCP") in extra


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_the_services_reach_the_token_issuer(variant):
    """Tokens come from the consent service's IssueToken, yet partners and producers
    reach only the gateway and ingest: no edge from outside to consent (relaying
    IssueToken through the gateway and ingest is issue 6; docs/deploy.md)."""
    allowed = allowed_edges(Rendered(variant))
    assert {src for src, dst, _, _ in allowed if dst == "consent"} == {"gateway", "ingest", "feature", "scoring"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_token_checking_service_reaches_the_revocation_list(variant):
    """Every service but consent polls ListRevocations on the consent service's gRPC
    port; one cut off from it refuses every token once its list is
    REVOCATION_MAX_STALENESS_SECONDS old."""
    allowed = allowed_edges(Rendered(variant))
    for service in SERVICES:
        if service != "consent":
            assert (service, "consent", PORT["consent"], "TCP") in allowed, service
