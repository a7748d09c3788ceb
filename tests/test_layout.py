"""The house rules, read from the code itself (every import statement, those inside
functions included):

- services import only ``creditscore.*`` (contracts, runtime, features, scorecard),
  never one another;
- ``creditscore.features``, ``creditscore.scorecard`` and ``creditscore.sim`` are pure:
  no gRPC, no database driver, no runtime, no service, no command line;
- the runtime imports no service and none of the pure libraries or the CLI;
- the command line talks to services over gRPC and imports none of them;
- ``protos/creditscore`` holds contracts and generated code only;
- every package on disk is one pyproject.toml installs.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("consent_service", "ingest_service", "feature_service", "scoring_service", "gateway")
PURE = ("creditscore.features", "creditscore.scorecard", "creditscore.sim")
#: Modules a pure library may not import (or any module below them).
NOT_PURE = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "sqlalchemy", "aiosqlite", "asyncpg",
            "alembic", "opentelemetry", "creditscore.runtime", "creditscore.cli", *SERVICES)


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[0] in ("src", "protos"):
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{f.relative_to(ROOT)}: {name}" for f in files for name in sorted(_imports(f))
            if _under(name, forbidden)]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    others = tuple(s for s in SERVICES if s != service)
    assert _violations(_files(service), others) == []


def test_the_pure_libraries_import_no_grpc_database_runtime_or_service() -> None:
    files = _files("src/creditscore/features", "src/creditscore/scorecard", "src/creditscore/sim")
    assert files
    bad = _violations(files, NOT_PURE)
    # Generated stubs of services are gRPC; messages (_pb2) are plain data and allowed.
    bad += [f"{f.relative_to(ROOT)}: {name}" for f in files for name in _imports(f) if name.endswith("_pb2_grpc")]
    assert bad == []


def test_the_runtime_imports_no_service_and_no_library_above_it() -> None:
    assert _violations(_files("src/creditscore/runtime"),
                       (*SERVICES, *PURE, "creditscore.cli")) == []


def test_the_command_line_imports_no_service() -> None:
    assert _violations(_files("src/creditscore/cli"), SERVICES) == []


def test_protos_holds_contracts_and_generated_code_only() -> None:
    hand_written = [p.relative_to(ROOT) for p in (ROOT / "protos").rglob("*.py")
                    if "__pycache__" not in p.parts and not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))
                    and not (p.name == "__init__.py" and p.stat().st_size == 0)]
    assert hand_written == []
    assert not (ROOT / "protos/creditscore/__init__.py").exists(), "creditscore is a namespace package"


def test_every_package_on_disk_is_installed_from_where_it_is() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    mapping = config["package-dir"]
    on_disk: dict[str, Path] = {}
    for root in ("src", "protos"):
        for init in (ROOT / root / "creditscore").rglob("__init__.py"):
            on_disk[_module_of(init)] = init.parent
    for service in SERVICES:
        for init in (ROOT / service).rglob("__init__.py"):
            on_disk[_module_of(init)] = init.parent
    assert declared == set(on_disk)
    for name, folder in on_disk.items():
        top = ".".join(name.split(".")[:2]) if name.startswith("creditscore.") else ""
        if top:
            assert (ROOT / mapping[top]) / Path(*name.split(".")[2:]) == folder, name
