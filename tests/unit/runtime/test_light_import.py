"""Importing the runtime for one error class stays light, and every public name of
the (lazy) package still resolves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import creditscore.runtime as runtime

HEAVY = ("sqlalchemy", "jwt", "opentelemetry.sdk", "aiosqlite", "asyncpg", "alembic", "cryptography")


def _loaded_after(statement: str) -> list[str]:
    """The heavy modules loaded by ``statement`` in a fresh interpreter."""
    script = f"import json, sys\n{statement}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("statement", [
    "import creditscore.runtime.errors",
    "from creditscore.runtime.errors import CallError, DomainError, NotFound, Violations, to_status",
    "import creditscore.runtime",
    "from creditscore.runtime import CallError, InvalidArgument",
])
def test_the_errors_load_no_database_no_jwt_no_telemetry_sdk(statement):
    assert _loaded_after(statement) == []


def test_the_errors_module_is_the_error_model():
    from creditscore.runtime import _errors, errors

    for name in errors.__all__:
        assert getattr(errors, name) is getattr(_errors, name)
    assert {"CallError", "DomainError", "Violations", "FieldViolation", "to_status", "NotFound"} <= set(errors.__all__)


def test_every_public_name_resolves_to_its_definition():
    import importlib

    assert len(runtime.__all__) == len(set(runtime.__all__))
    assert set(runtime.__all__) == set(runtime._WHERE)
    for name in runtime.__all__:
        defining = importlib.import_module(f"creditscore.runtime.{runtime._WHERE[name]}")
        assert getattr(runtime, name) is getattr(defining, name), name
    assert set(runtime.__all__) <= set(dir(runtime))
    with pytest.raises(AttributeError):
        runtime.no_such_name  # noqa: B018


def test_a_name_is_loaded_with_its_module_only_when_used():
    loaded = _loaded_after("import creditscore.runtime as r\nr.make_engine")
    assert "sqlalchemy" in loaded and "jwt" not in loaded
