"""ScoringService on a real in-process server (port 0) over SQLite and PostgreSQL:
what crosses the wire for scores, bad requests and model listings, and the score
history row a new score leaves behind (and the same score again does not)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.runtime import (
    CallError,
    SchemaError,
    ServerSettings,
    create_channel,
    from_timestamp,
    make_engine,
    upgrade_schema,
)
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from scoring_service.config import Settings
from scoring_service.migrations import MIGRATIONS
from scoring_service.registry import ModelLoadError
from scoring_service.server import build_server
from scoring_service.store import ScoreStore
from tests.authkit import NO_AUTH


def artifact(version: str, auc: float) -> dict[str, Any]:
    """Four features; the most points are 170 + 160 + 150 + 165 = 645."""

    def feature(name: str, bins: list[tuple[float | None, float | None, float]], missing: float) -> dict[str, Any]:
        return {
            "name": name,
            "coefficient": -1.0,
            "bins": [{"lo": lo, "hi": hi, "count": 10, "bad_rate": 0.1, "woe": 0.0, "points": p} for lo, hi, p in bins],
            "missing": {"count": 1, "bad_rate": 0.1, "woe": 0.0, "points": missing},
        }

    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"hand-built scorecard {version} for the contract tests",
        "train_time": "2026-11-01T08:30:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.25,
        "features": [
            feature("pay_ontime_ratio_12m", [(None, 0.8, 100), (0.8, 0.95, 140), (0.95, None, 170)], 120),
            feature("pay_worst_days_late_12m", [(None, 5, 160), (5, 30, 130), (30, None, 90)], 125),
            feature("identity_verified", [(None, 0.5, 110), (0.5, None, 150)], 115),
            feature("ext_delinquencies_24m", [(None, 1, 165), (1, None, 95)], 140),
        ],
        "metrics": {"auc": auc, "ks": 0.41, "gini": 2 * auc - 1},
    }


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for version, auc in (("1.0.0", 0.74), ("1.1.0", 0.78)):
        (folder / f"scorecard-{version}.json").write_text(json.dumps(artifact(version, auc)))
    return folder


def settings(database_url: str, model_dir: Path, model_version: str = "") -> Settings:
    return Settings(
        server=ServerSettings(host="127.0.0.1", port=0),
        database_url=database_url,
        model_dir=str(model_dir),
        model_version=model_version,
        auth=NO_AUTH,
    )


@pytest.fixture
async def stub(database_url, model_dir):
    handle = await build_server(settings(database_url, model_dir))
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        yield scoring_pb2_grpc.ScoringServiceStub(channel)
    finally:
        await channel.close()
        await handle.stop(0)


def fv(name: str, value: float | None = None) -> common_pb2.FeatureValue:
    return common_pb2.FeatureValue(name=name) if value is None else common_pb2.FeatureValue(name=name, value=value)


async def call_error(call: Any) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def test_a_score_in_range_with_reasons(stub):
    request = scoring_pb2.ScoreFeaturesRequest(
        subject_id="subj-1",
        features=[
            fv("pay_ontime_ratio_12m", 0.9),
            fv("pay_worst_days_late_12m", 10),
            fv("identity_verified", 1),
            fv("ext_delinquencies_24m"),  # sent without a value: no data
            fv("seller_avg_rating_24m", 4.5),  # a catalog feature the model does not use
        ],
    )
    score = (await stub.ScoreFeatures(request, timeout=5)).score
    assert score.subject_id == "subj-1" and score.model_version == "1.1.0"
    assert score.state == common_pb2.SCORE_STATE_SCORED
    # 140 + 130 + 150 + 140 = 560: FAIR; 40 points under the offset at PDO 20 is
    # good:bad odds of 1:4, so P(bad) = 0.8.
    assert score.score == 560 and score.band == common_pb2.SCORE_BAND_FAIR
    assert score.probability_of_bad == pytest.approx(0.8)
    assert score.coverage == pytest.approx(0.75)
    assert [(r.code, r.feature, r.points_lost) for r in score.reasons] == [
        ("PAY_ONTIME_RATIO_12M", "pay_ontime_ratio_12m", 30.0),
        ("PAY_WORST_DAYS_LATE_12M", "pay_worst_days_late_12m", 30.0),
        ("EXT_DELINQUENCIES_24M_NO_DATA", "ext_delinquencies_24m", 25.0),  # sent without a value
    ]
    assert score.reasons[0].text == "Some bills in the last 12 months were paid late or not at all"
    assert score.HasField("score_time")


async def test_an_empty_vector_is_insufficient_data(stub):
    score = (await stub.ScoreFeatures(scoring_pb2.ScoreFeaturesRequest(subject_id="subj-2"), timeout=5)).score
    assert score.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA
    assert (score.score, score.band, score.probability_of_bad, list(score.reasons)) == (
        0, common_pb2.SCORE_BAND_UNSPECIFIED, 0.0, []
    )
    assert score.coverage == 0.0 and score.model_version == "1.1.0"
    assert score.score_id == 0 and score.HasField("score_time")  # scored now, not stored
    assert not (await stub.ListScores(scoring_pb2.ListScoresRequest(subject_id="subj-2"), timeout=5)).scores


async def test_bad_requests_are_invalid_argument_with_violations(stub):
    err = await call_error(
        stub.ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(
                subject_id="subj-3",
                features=[fv("pay_ontime_ratio_12m", 0.9), fv("favourite_colour", 1.0)],
            ),
            timeout=5,
        )
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.reason, err.domain) == ("INVALID_ARGUMENT", "scoring.creditscore")
    assert [(v.field, v.description) for v in err.violations] == [
        ("features[1].name", "unknown feature 'favourite_colour'")
    ]

    err = await call_error(
        stub.ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(
                subject_id="",
                features=[fv("identity_verified", 1), fv("identity_verified", 0), fv("history_months", math.nan)],
            ),
            timeout=5,
        )
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["subject_id", "features[1].name", "features[2].value"]


async def test_list_models_pages_and_flags_the_active_one(stub):
    reply = await stub.ListModels(scoring_pb2.ListModelsRequest(), timeout=5)
    assert [(m.version, m.active) for m in reply.models] == [("1.1.0", True), ("1.0.0", False)]
    assert reply.next_page_token == ""
    newest = reply.models[0]
    assert (newest.auc, newest.ks, newest.gini) == pytest.approx((0.78, 0.41, 0.56))
    assert newest.description == "hand-built scorecard 1.1.0 for the contract tests"
    assert list(newest.features) == [
        "pay_ontime_ratio_12m", "pay_worst_days_late_12m", "identity_verified", "ext_delinquencies_24m"
    ]
    assert from_timestamp(newest, "train_time").isoformat() == "2026-11-01T08:30:00+00:00"

    first = await stub.ListModels(scoring_pb2.ListModelsRequest(page_size=1), timeout=5)
    assert [m.version for m in first.models] == ["1.1.0"] and first.next_page_token
    second = await stub.ListModels(
        scoring_pb2.ListModelsRequest(page_size=1, page_token=first.next_page_token), timeout=5
    )
    assert [m.version for m in second.models] == ["1.0.0"] and second.next_page_token == ""

    err = await call_error(stub.ListModels(scoring_pb2.ListModelsRequest(page_size=-1), timeout=5))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == ["page_size"]
    err = await call_error(stub.ListModels(scoring_pb2.ListModelsRequest(page_token="not*a*token"), timeout=5))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_a_new_score_writes_a_history_row_and_the_same_score_again_none(stub, database_url):
    request = scoring_pb2.ScoreFeaturesRequest(
        subject_id="subj-4", features=[fv("pay_ontime_ratio_12m", 0.97), fv("identity_verified", 0)]
    )
    score = (await stub.ScoreFeatures(request, timeout=5)).score
    assert score.score_id > 0
    # The same vector again is no change: the stored score answers, nothing is written.
    assert (await stub.ScoreFeatures(request, timeout=5)).score == score
    engine = make_engine(database_url)
    try:
        rows = await ScoreStore(engine).history("subj-4")
    finally:
        await engine.dispose()
    assert len(rows) == 1 and rows[0].id == score.score_id
    row = rows[0]
    # 170 + 125 (no data) + 110 + 140 (no data) = 545
    assert score.score == 545 and score.band == common_pb2.SCORE_BAND_POOR
    assert (row.model_version, row.score, row.band.value, row.state.value) == ("1.1.0", 545, "POOR", "SCORED")
    assert row.features == {"pay_ontime_ratio_12m": 0.97, "identity_verified": 0.0}
    assert row.probability_of_bad == pytest.approx(score.probability_of_bad)
    assert [r.code for r in row.reasons] == [r.code for r in score.reasons]
    assert row.score_time == from_timestamp(score, "score_time")


async def test_model_version_setting_picks_the_active_model(database_url, model_dir):
    handle = await build_server(settings(database_url, model_dir, model_version="1.0.0"))
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        score = (await stub.ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(subject_id="s", features=[fv("identity_verified", 1)]), timeout=5
        )).score
        assert score.model_version == "1.0.0"
        models = (await stub.ListModels(scoring_pb2.ListModelsRequest(), timeout=5)).models
        assert [(m.version, m.active) for m in models] == [("1.1.0", False), ("1.0.0", True)]
    finally:
        await channel.close()
        await handle.stop(0)


async def test_the_server_refuses_to_start_without_a_model(tmp_path, sqlite_url):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="no scorecard found"):
        await build_server(settings(sqlite_url, empty))
    (empty / "scorecard-1.0.0.json").write_text(json.dumps(artifact("1.0.0", 0.7)))
    with pytest.raises(ModelLoadError, match="MODEL_VERSION '9.9.9'"):
        await build_server(settings(sqlite_url, empty, model_version="9.9.9"))


async def test_without_auto_migrate_the_server_needs_a_migrated_database(database_url, model_dir):
    checked = replace(settings(database_url, model_dir), auto_migrate=False)
    with pytest.raises(SchemaError, match="python -m scoring_service migrate"):
        await build_server(checked)
    engine = make_engine(database_url)
    try:
        await upgrade_schema(engine, MIGRATIONS)  # what the migration Job does
    finally:
        await engine.dispose()
    handle = await build_server(checked)
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")
    try:
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        score = (await stub.ScoreFeatures(
            scoring_pb2.ScoreFeaturesRequest(subject_id="s", features=[fv("identity_verified", 1)]), timeout=5
        )).score
        assert score.model_version == "1.1.0"
    finally:
        await channel.close()
        await handle.stop(0)
