"""``creditscore models`` and ``creditscore drift`` against a real in-process
scoring service (port 0, SQLite)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from creditscore.cli import main
from creditscore.cli.models import drift, models, parse_time
from creditscore.common.v1 import common_pb2
from creditscore.runtime import ServerSettings, create_channel
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from scoring_service.config import Settings
from scoring_service.server import build_server
from tests.authkit import NO_AUTH


def artifact(version: str) -> dict[str, Any]:
    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"cli test model {version}",
        "train_time": "2026-10-01T12:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.5,
        "features": [{
            "name": "pay_ontime_ratio_12m", "coefficient": -1.0,
            "bins": [{"lo": None, "hi": 0.8, "points": 500.0}, {"lo": 0.8, "hi": None, "points": 700.0}],
            "missing": {"points": 550.0},
        }],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
        "training_distribution": {
            "score": {"edges": [350, 600, 950], "shares": [0.5, 0.5]},
            "features": {"pay_ontime_ratio_12m": {"bins": [0.5, 0.5], "missing": 0.0}},
        },
    }


@pytest.fixture
async def address(tmp_path, sqlite_url) -> AsyncIterator[str]:
    folder = tmp_path / "models"
    folder.mkdir()
    for version in ("1.0.0", "1.1.0"):
        (folder / f"scorecard-{version}.json").write_text(json.dumps(artifact(version)))
    handle = await build_server(Settings(
        server=ServerSettings(host="127.0.0.1", port=0), database_url=sqlite_url, model_dir=str(folder),
        auth=NO_AUTH,
    ))
    await handle.start()
    try:
        yield f"127.0.0.1:{handle.port}"
    finally:
        await handle.stop(0)


async def run(command, argv: list[str], address: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    status = await command([*argv, "--scoring", address], out=lines.append)
    return status, lines


async def test_models_list_show_activate_rollback_challenger_events(address, capsys):
    status, lines = await run(models, ["list"], address)
    assert status == 0
    assert [line.split()[:2] for line in lines[1:3]] == [["*", "1.1.0"], ["1.0.0", "2026-10-01"]]

    status, lines = await run(models, ["show"], address)
    assert status == 0 and lines[0].startswith("1.1.0 (champion, creditscore.scorecard/1)")
    assert [line.split() for line in lines[-3:]] == [["<", "0.8", "500.00"], [">=", "0.8", "700.00"],
                                                     ["no", "data", "550.00"]]

    status, lines = await run(models, ["activate", "1.0.0", "--note", "from the cli"], address)
    assert status == 0 and lines[0] == "champion: 1.0.0"
    assert "ACTIVATED" in lines[1] and "(from the cli)" in lines[1]
    status, lines = await run(models, ["challenger", "1.1.0"], address)
    assert (status, lines[0]) == (0, "challenger: 1.1.0")
    status, lines = await run(models, ["rollback"], address)
    assert (status, lines[0]) == (0, "champion: 1.1.0 (was 1.0.0)")
    assert "challenger -" in lines[1]  # the challenger became the champion: cleared
    status, lines = await run(models, ["challenger", "--clear"], address)
    assert (status, lines[0]) == (0, "challenger: none")

    status, lines = await run(models, ["events", "--limit", "3"], address)
    assert status == 0
    assert [line.split()[3] for line in lines] == ["CHALLENGER_CLEARED", "ROLLED_BACK", "CHALLENGER_SET"]

    # A failed call: the status, the reason, exit 1.
    status, lines = await run(models, ["activate", "9.9.9"], address)
    assert status == 1 and lines == []
    assert "NOT_FOUND" in capsys.readouterr().err
    status, _ = await run(models, ["rollback"], address)
    err = capsys.readouterr().err
    assert status == 1 and "[NO_PREVIOUS_VERSION]" in err
    status, _ = await run(models, ["activate", "bad version"], address)
    err = capsys.readouterr().err
    assert status == 1 and "version: must be 1-64" in err


async def test_drift_prints_the_psi_of_the_score_and_each_feature(address):
    channel = create_channel(address)
    try:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        for i, value in enumerate([0.5] * 5 + [0.9] * 5):
            await stub.ScoreFeatures(scoring_pb2.ScoreFeaturesRequest(
                subject_id=f"s-{i}", features=[common_pb2.FeatureValue(name="pay_ontime_ratio_12m", value=value)]
            ), timeout=5)
    finally:
        await channel.close()
    status, lines = await run(drift, ["--min-scores", "10"], address)
    assert status == 0
    assert lines[0].startswith("scorecard 1.1.0: 10 scores from the first score to ")
    assert lines[2].split() == ["score", "0.0000", "STABLE"]
    assert lines[3].split() == ["pay_ontime_ratio_12m", "0.0000", "STABLE"]
    status, lines = await run(drift, ["--since", "2999-01-01"], address)
    assert status == 0 and lines[2].split() == ["score", "-", "INSUFFICIENT_DATA"]


async def test_the_creditscore_command_dispatches_to_them(address):
    # The command runs its own event loop: in a thread, beside the server's.
    assert await asyncio.to_thread(main, ["models", "list", "--scoring", address]) == 0
    assert await asyncio.to_thread(main, ["drift", "--scoring", address]) == 0


def test_times_without_a_zone_are_utc():
    assert parse_time("2026-11-01").isoformat() == "2026-11-01T00:00:00+00:00"
    assert parse_time("2026-11-01T10:00:00+02:00").isoformat() == "2026-11-01T10:00:00+02:00"
    assert parse_time("2026-11-01T10:00:00Z").isoformat() == "2026-11-01T10:00:00+00:00"
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday")
