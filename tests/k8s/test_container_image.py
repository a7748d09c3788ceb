"""The image definition, read as data (no Docker engine here to build it): a pinned
slim Python base, the project installed without its dev extra, a numeric non-root
user that the manifests run as, nothing written at run time, one image for all."""

from __future__ import annotations

import re
import tomllib

from tests.k8s.manifests import ROOT, Rendered, containers, pod_spec

DOCKERFILE = (ROOT / "Dockerfile").read_text()
PACKAGES = ["consent_service", "ingest_service", "feature_service", "scoring_service", "gateway"]


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_base_image_is_a_pinned_slim_python_the_project_supports():
    [arg] = [rest for word, rest in instructions() if word == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image)
    assert match, f"not a pinned slim Python: {image}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={match.group(1)}.{match.group(2)}"
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: build, then a runtime without the build's leftovers"
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for rest in froms)


def test_installs_the_project_without_dev_extras():
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the project itself, no extras"
    assert "[dev]" not in DOCKERFILE and "-e " not in runs
    copied = {rest.split()[0].rstrip("/") for word, rest in instructions() if word == "COPY" and "--from" not in rest}
    assert set(PACKAGES) | {"protos"} <= copied
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore lets in only what it lists"
    for package in [*PACKAGES, "protos"]:
        assert f"!{package}/" in ignore


def test_runs_as_the_numeric_non_root_user_the_manifests_expect():
    [user] = [rest for word, rest in final_stage() if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    env = " ".join(rest for word, rest in final_stage() if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "compileall" in DOCKERFILE, "byte-code compiled at build time, as the root filesystem is read-only"
    rendered = Rendered("production")
    for w in rendered.workloads():
        for c in containers(w):
            if "creditscore" in c["image"]:
                context = {**pod_spec(w).get("securityContext", {}), **c.get("securityContext", {})}
                assert context["runAsUser"] == int(uid) and context["runAsGroup"] == int(gid)


def test_one_image_the_command_picks_the_service():
    [cmd] = [rest for word, rest in final_stage() if word == "CMD"]
    assert cmd == '["python", "-m", "gateway"]'
    exposed = {int(p) for word, rest in final_stage() if word == "EXPOSE" for p in rest.split()}
    assert exposed == {50050, 50051, 50052, 50053, 50054}
    images = {c["image"] for w in Rendered("production").workloads() for c in containers(w)
              if "creditscore" in c["image"]}
    assert len(images) == 1
