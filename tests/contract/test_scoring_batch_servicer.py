"""ScoringService.ScoreBatch, and the score history that records changes, on a real
in-process server (port 0) over SQLite and PostgreSQL: what crosses the wire, bad
batches, who may call, and the rows ListScores shows for repeated, changed,
re-modelled and empty vectors."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from creditscore.common.v1 import common_pb2
from creditscore.runtime import AuthSettings, CallError, ServerSettings, create_channel
from creditscore.scoring.v1 import scoring_pb2 as pb
from creditscore.scoring.v1 import scoring_pb2_grpc
from scoring_service.config import Settings
from scoring_service.server import build_server
from tests.authkit import NO_AUTH, TokenKeys, bearer, no_revocations

Values = dict[str, float | None]
GOOD: Values = {"pay_ontime_ratio_12m": 0.97, "identity_verified": 1.0, "ext_delinquencies_24m": 0.0}
FAIR: Values = {"pay_ontime_ratio_12m": 0.9, "pay_worst_days_late_12m": 10.0, "identity_verified": 1.0}
NONE: Values = {"pay_ontime_ratio_12m": None, "identity_verified": None}


def artifact(version: str, intercept: float) -> dict[str, Any]:
    def feature(name: str, bins: list[tuple[float | None, float | None, float]], missing: float) -> dict[str, Any]:
        return {
            "name": name,
            "coefficient": -1.0,
            "bins": [{"lo": lo, "hi": hi, "points": p} for lo, hi, p in bins],
            "missing": {"points": missing},
        }

    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"hand-built scorecard {version} for the batch tests",
        "train_time": "2026-11-01T08:30:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.25,
        "intercept_points": intercept,
        "features": [
            feature("pay_ontime_ratio_12m", [(None, 0.8, 100), (0.8, 0.95, 140), (0.95, None, 170)], 120),
            feature("pay_worst_days_late_12m", [(None, 5, 160), (5, 30, 130), (30, None, 90)], 125),
            feature("identity_verified", [(None, 0.5, 110), (0.5, None, 150)], 115),
            feature("ext_delinquencies_24m", [(None, 1, 165), (1, None, 95)], 140),
        ],
        "metrics": {"auc": 0.75, "ks": 0.4, "gini": 0.5},
    }


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for version, intercept in (("1.0.0", 0.0), ("1.1.0", 8.0)):
        (folder / f"scorecard-{version}.json").write_text(json.dumps(artifact(version, intercept)))
    return folder


async def serve(
    database_url: str, model_dir: Path, auth: AuthSettings = NO_AUTH
) -> tuple[Callable[[], Awaitable[None]], scoring_pb2_grpc.ScoringServiceStub]:
    handle = await build_server(Settings(
        server=ServerSettings(host="127.0.0.1", port=0), database_url=database_url, model_dir=str(model_dir),
        auth=auth,
    ), revocations=no_revocations)
    await handle.start()
    channel = create_channel(f"127.0.0.1:{handle.port}")

    async def stop() -> None:
        await channel.close()
        await handle.stop(0)

    return stop, scoring_pb2_grpc.ScoringServiceStub(channel)


@pytest.fixture
async def stub(database_url, model_dir) -> AsyncIterator[scoring_pb2_grpc.ScoringServiceStub]:
    stop, stub = await serve(database_url, model_dir)
    try:
        yield stub
    finally:
        await stop()


def item(subject_id: str, values: Values) -> pb.ScoreFeaturesRequest:
    return pb.ScoreFeaturesRequest(subject_id=subject_id, features=[
        common_pb2.FeatureValue(name=k) if v is None else common_pb2.FeatureValue(name=k, value=v)
        for k, v in values.items()
    ])


async def refused(call: Any) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return CallError.from_rpc_error(info.value)


async def history(stub, subject_id: str) -> list[pb.StoredScore]:
    return list((await stub.ListScores(pb.ListScoresRequest(subject_id=subject_id), timeout=5)).scores)


async def test_a_batch_scores_each_item_as_score_features_does(stub):
    stored_b = (await stub.ScoreFeatures(item("b", FAIR), timeout=5)).score  # b has a stored score already
    items = [item("a", GOOD), item("b", FAIR), item("c", NONE), item("a", FAIR), item("b", GOOD), item("a", FAIR)]
    scores = list((await stub.ScoreBatch(pb.ScoreBatchRequest(items=items), timeout=5)).scores)
    assert [s.subject_id for s in scores] == ["a", "b", "c", "a", "b", "a"]
    assert [s.state for s in scores] == [common_pb2.SCORE_STATE_SCORED] * 2 + [
        common_pb2.SCORE_STATE_INSUFFICIENT_DATA] + [common_pb2.SCORE_STATE_SCORED] * 3
    # 170 + 125 (no data) + 150 + 165 + 8 = 618, GOOD.
    assert (scores[0].score, scores[0].band, scores[0].model_version) == (618, common_pb2.SCORE_BAND_GOOD, "1.1.0")
    assert scores[1] == stored_b  # no change: the stored score, its id and time
    assert scores[5] == scores[3] and scores[3].score_id != scores[0].score_id
    assert scores[2].score_id == 0  # no data: not stored
    # Scored one by one now, each vector is the subject's latest or no change from it...
    assert (await stub.ScoreFeatures(items[5], timeout=5)).score == scores[5]
    assert (await stub.ScoreFeatures(items[4], timeout=5)).score == scores[4]
    # ... and every stored score is the one ScoreFeatures gives for its vector.
    for index in (0, 1, 3):
        again = (await stub.ScoreFeatures(items[index], timeout=5)).score
        assert (again.score, list(again.reasons), list(again.improvements), again.probability_of_bad) == (
            scores[index].score, list(scores[index].reasons), list(scores[index].improvements),
            scores[index].probability_of_bad)
    empty = (await stub.ScoreFeatures(items[2], timeout=5)).score
    assert (empty.state, empty.score_id, empty.coverage) == (scores[2].state, 0, 0.0)


async def test_history_is_written_on_change_only(stub):
    first = (await stub.ScoreFeatures(item("s", GOOD), timeout=5)).score
    assert (await stub.ScoreFeatures(item("s", GOOD), timeout=5)).score == first
    assert [h.score for h in await history(stub, "s")] == [first]
    changed = (await stub.ScoreFeatures(item("s", FAIR), timeout=5)).score
    assert changed.score_id > first.score_id
    await stub.ActivateModel(pb.ActivateModelRequest(request_id="a-1", version="1.0.0"), timeout=5)
    remodelled = (await stub.ScoreFeatures(item("s", FAIR), timeout=5)).score
    assert remodelled.model_version == "1.0.0" and remodelled.score == changed.score - 8
    nothing = (await stub.ScoreFeatures(item("s", NONE), timeout=5)).score
    assert nothing.score_id == 0 and nothing.state == common_pb2.SCORE_STATE_INSUFFICIENT_DATA
    stored = await history(stub, "s")
    assert [h.score for h in stored] == [remodelled, changed, first]
    for h in stored:
        reply = await stub.RecomputeScore(pb.RecomputeScoreRequest(score_id=h.score.score_id), timeout=5)
        assert reply.identical and reply.recomputed == h.score
    assert await history(stub, "nobody-with-data") == []
    await stub.ScoreFeatures(item("nobody-with-data", NONE), timeout=5)
    assert await history(stub, "nobody-with-data") == []


async def test_bad_batches_are_refused_whole_with_every_violation(stub):
    for items in ([], [item("s", GOOD)] * 257):
        err = await refused(stub.ScoreBatch(pb.ScoreBatchRequest(items=items), timeout=5))
        assert (err.code, err.reason, err.domain) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "scoring.creditscore")
        assert [(v.field, v.description) for v in err.violations] == [("items", "must hold 1 to 256 items")]
    bad = pb.ScoreFeaturesRequest(subject_id="not ok!", features=[
        common_pb2.FeatureValue(name="favourite_colour", value=1.0),
        common_pb2.FeatureValue(name="identity_verified", value=math.nan),
    ])
    err = await refused(stub.ScoreBatch(pb.ScoreBatchRequest(items=[item("fine", GOOD), bad]), timeout=5))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.violations] == [
        "items[1].subject_id", "items[1].features[0].name", "items[1].features[1].value"]
    assert await history(stub, "fine") == []  # nothing of the batch was written
    reply = await stub.ScoreBatch(pb.ScoreBatchRequest(items=[item(f"s{i}", GOOD) for i in range(256)]), timeout=10)
    assert len(reply.scores) == 256 and len({s.score_id for s in reply.scores}) == 256


async def test_services_may_score_a_batch_nobody_else(database_url, model_dir, tmp_path):
    keys = TokenKeys.generate()
    stop, stub = await serve(database_url, model_dir, keys.settings(tmp_path))
    try:
        request = pb.ScoreBatchRequest(items=[item("s", GOOD)])
        reply = await stub.ScoreBatch(request, metadata=bearer(keys.service("gateway")), timeout=5)
        assert reply.scores[0].subject_id == "s"
        for metadata, expected in (
            ((), (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")),
            (bearer(keys.partner("p1")), (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")),
            (bearer(keys.producer("wallet", ["DATA_SOURCE_PAYMENTS"])),
             (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_WRONG_AUDIENCE")),
        ):
            err = await refused(stub.ScoreBatch(request, metadata=metadata, timeout=5))
            assert (err.code, err.reason) == expected
    finally:
        await stop()
