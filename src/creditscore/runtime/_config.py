"""Settings from environment variables into frozen dataclasses.

Each service declares a frozen dataclass whose fields carry defaults and, in
``metadata["env"]``, the variable that sets them::

    @dataclass(frozen=True)
    class Settings:
        grpc_port: int = env_field("GRPC_PORT", 50051)

    settings = from_env(Settings)          # reads os.environ
    settings = from_env(Settings, {...})   # reads the mapping given (tests)

Values are parsed by the field's type (str, int, float, bool, tuple[str, ...]).
A field whose type is itself such a dataclass (``ServerSettings``) is read the
same way, on top of the field's default instance.
A malformed value raises ``SettingsError`` naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["SettingsError", "env_field", "from_env"]

T = TypeVar("T", bound="DataclassInstance")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def env_field(variable: str, default: Any, *, help: str = "") -> Any:
    """A dataclass field set by ``variable`` when present."""
    return dataclasses.field(default=default, metadata={"env": variable, "help": help})


def _parse(variable: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return raw
        origin = typing.get_origin(kind)
        if origin is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise SettingsError(f"{variable}={raw!r}: {exc}") from None
    raise SettingsError(f"{variable}: unsupported setting type {kind!r}")


def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Builds ``cls`` from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            # A nested settings dataclass: its own variables, on top of this
            # field's default instance (so a service can set its default port).
            base = field.default_factory() if field.default_factory is not dataclasses.MISSING else kind()
            overrides = from_env(kind, env)
            changed = {
                f.name: getattr(overrides, f.name)
                for f in dataclasses.fields(kind)
                if f.metadata.get("env") is not None and f.metadata["env"] in env
            }
            values[field.name] = dataclasses.replace(base, **changed)
            continue
        variable = field.metadata.get("env")
        if variable is None or variable not in env:
            continue
        values[field.name] = _parse(variable, env[variable], hints[field.name])
    return cls(**values)
