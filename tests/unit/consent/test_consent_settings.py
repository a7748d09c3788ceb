"""The consent service's SQLite durability setting: NORMAL by default, FULL when
asked, anything else refused at start with the variable's name."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from consent_service.config import Settings
from creditscore.runtime import SettingsError, from_env, make_engine


def test_sqlite_synchronous_defaults_to_normal_and_takes_full_in_any_case():
    assert from_env(Settings, {}).sqlite_synchronous == "NORMAL"
    assert from_env(Settings, {"SQLITE_SYNCHRONOUS": "full"}).sqlite_synchronous == "full"


def test_an_unknown_sqlite_synchronous_is_refused_with_its_name():
    with pytest.raises(SettingsError, match="SQLITE_SYNCHRONOUS must be one of NORMAL, FULL, not 'OFF'"):
        from_env(Settings, {"SQLITE_SYNCHRONOUS": "OFF"})


@pytest.mark.parametrize(("setting", "pragma"), [("NORMAL", 1), ("FULL", 2)])
async def test_the_engine_syncs_as_the_setting_says(tmp_path, setting, pragma):
    settings = from_env(Settings, {"SQLITE_SYNCHRONOUS": setting.lower()})
    engine = make_engine(f"sqlite:///{tmp_path / 'consent.db'}", sqlite_synchronous=settings.sqlite_synchronous.upper())
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == pragma
    finally:
        await engine.dispose()
