"""The scoring domain without gRPC: loading models, validating a request, scoring and
recording (what changed), recomputing a stored score, listing models."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from creditscore.runtime import SUBJECT_ID_RULE, InvalidArgument, from_env, make_engine
from creditscore.scorecard.model import Band, ScoreState
from scoring_service.config import Settings
from scoring_service.lifecycle import Lifecycle
from scoring_service.registry import ModelLoadError, ModelRegistry
from scoring_service.scoring import Scorer, recompute, validate_score_request
from scoring_service.store import ModelEventStore, ScoreStore


def card(version: str, *, shift: float = 0.0) -> dict[str, Any]:
    """Two features; a subject at the top of both gets 600 + shift points."""

    def bins(points: list[float]) -> list[dict[str, Any]]:
        edges = [None, 0.5, None]
        return [{"lo": edges[i], "hi": edges[i + 1], "points": p} for i, p in enumerate(points)]

    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"hand-built {version}",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.5,
        "intercept_points": shift,
        "features": [
            {"name": "pay_ontime_ratio_12m", "coefficient": -1.0, "bins": bins([250.0, 300.0]),
             "missing": {"points": 270.0}},
            {"name": "identity_verified", "coefficient": -1.0, "bins": bins([260.0, 300.0]),
             "missing": {"points": 280.0}},
        ],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
    }


def write(folder: Path, artifact: dict[str, Any], name: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name or f"scorecard-{artifact['version']}.json")).write_text(json.dumps(artifact))


def test_registry_loads_every_model_and_starts_from_the_highest_version(tmp_path):
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        write(tmp_path, card(version))
    (tmp_path / "notes.json").write_text("{}")  # not a scorecard-*.json: ignored
    registry = ModelRegistry.load(tmp_path)
    assert registry.versions() == ("1.10.0", "1.9.0", "1.2.0")
    assert registry.initial.version == "1.10.0"
    assert ModelRegistry.load(tmp_path, "1.2.0").initial.version == "1.2.0"
    assert "1.9.0" in registry and "1.9" not in registry


@pytest.mark.parametrize(
    ("setup", "active", "message"),
    [
        (lambda d: d.mkdir(), "", "no scorecard found"),
        (lambda d: None, "", "does not exist"),
        (lambda d: write(d, card("1.0.0")), "2.0.0", "MODEL_VERSION '2.0.0'"),
        (lambda d: write(d, card("1.0.0"), "scorecard-1.0.1.json"), "", "name it scorecard-1.0.0.json"),
        (lambda d: write(d, {**card("1.0.0"), "format": "x"}), "", "format"),
    ],
)
def test_registry_refuses_to_start_without_a_usable_model(tmp_path, setup, active, message):
    folder = tmp_path / "models"
    setup(folder)
    with pytest.raises(ModelLoadError, match=message):
        ModelRegistry.load(folder, active)


def test_validation_names_every_bad_field():
    with pytest.raises(InvalidArgument) as info:
        validate_score_request(
            "bad id!",
            [
                ("pay_ontime_ratio_12m", 0.9),
                ("favourite_colour", 1.0),
                ("pay_ontime_ratio_12m", 0.8),
                ("", None),
                ("identity_verified", math.inf),
                ("history_months", math.nan),
            ],
        )
    assert [(v.field, v.description) for v in info.value.violations] == [
        ("subject_id", SUBJECT_ID_RULE),
        ("features[1].name", "unknown feature 'favourite_colour'"),
        ("features[2].name", "duplicate of features[0]"),
        ("features[3].name", "must be set"),
        ("features[4].value", "must be a finite number (leave it unset for no data)"),
        ("features[5].value", "must be a finite number (leave it unset for no data)"),
    ]
    assert validate_score_request("s-1_A", [("history_months", None), ("identity_verified", 1.0)]) == {
        "history_months": None,
        "identity_verified": 1.0,
    }
    for subject in ("", "x" * 65):
        with pytest.raises(InvalidArgument):
            validate_score_request(subject, [])
    validate_score_request("x" * 64, [])


@pytest.fixture
async def scorer(tmp_path, database_url):
    write(tmp_path / "models", card("1.0.0"))
    write(tmp_path / "models", card("1.1.0", shift=5.0))
    registry = ModelRegistry.load(tmp_path / "models")
    engine = make_engine(database_url)
    store = ScoreStore(engine)
    await store.create_schema()
    lifecycle = await Lifecycle.open(registry, ModelEventStore(engine))
    clock = iter(datetime(2026, 11, 2, 9, 0, s, tzinfo=UTC) for s in range(60))
    try:
        yield Scorer(lifecycle, store, clock=lambda: next(clock)), store, registry
    finally:
        await engine.dispose()


async def test_score_is_recorded_and_recomputable(scorer):
    service, store, registry = scorer
    first = await service.score("subject-1", [("pay_ontime_ratio_12m", 0.2), ("identity_verified", 1.0)])
    # 250 + 300 + 5 (intercept of 1.1.0, the active model) = 555
    assert (first.score, first.band, first.state, first.model_version) == (555, Band.FAIR, ScoreState.SCORED, "1.1.0")
    assert [r.feature for r in first.reasons] == ["pay_ontime_ratio_12m"]
    assert first.id is not None
    # Data, but none the model uses: INSUFFICIENT_DATA, a change, stored.
    second = await service.score("subject-1", [("history_months", 3.0), ("identity_verified", None)])
    assert second.state is ScoreState.INSUFFICIENT_DATA and second.score is None and second.id is not None
    # No data at all: scored, never stored.
    empty = await service.score("subject-2", [])
    assert empty.state is ScoreState.INSUFFICIENT_DATA and empty.id is None
    assert await store.history("subject-2") == []

    history = await store.history("subject-1")
    assert [h.id for h in history] == [second.id, first.id]  # newest first
    stored = history[1]
    assert stored == first
    assert stored.features == {"pay_ontime_ratio_12m": 0.2, "identity_verified": 1.0}
    assert stored.score_time == datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)
    assert history[0].features == {"history_months": 3.0, "identity_verified": None}
    assert history[0].probability_of_bad is None and history[0].band is Band.UNSPECIFIED
    # Any stored score can be recomputed from its vector and model version.
    for record in history:
        again = recompute(registry, record)
        assert (again.state, again.score, again.band, again.reasons, again.probability_of_bad) == (
            record.state, record.score, record.band, record.reasons, record.probability_of_bad
        )


async def test_an_invalid_request_records_nothing(scorer):
    service, store, _ = scorer
    with pytest.raises(InvalidArgument):
        await service.score("subject-3", [("nope", 1.0)])
    assert await store.history("subject-3") == []


async def test_models_are_listed_newest_first_in_pages(scorer):
    service, _, _ = scorer
    page, token = service.list_models(1, "")
    assert [c.version for c in page] == ["1.1.0"] and token
    assert service.is_active(page[0])
    page, token = service.list_models(1, token)
    assert [c.version for c in page] == ["1.0.0"] and token == ""
    assert not service.is_active(page[0])
    page, token = service.list_models(0, "")
    assert [c.version for c in page] == ["1.1.0", "1.0.0"] and token == ""
    with pytest.raises(InvalidArgument):
        service.list_models(-1, "")
    with pytest.raises(InvalidArgument):
        service.list_models(10, "garbage!")


def test_settings_default_to_the_shipped_models_and_read_the_environment():
    defaults = from_env(Settings, {})
    assert defaults.server.port == 50054
    assert defaults.database_url == "sqlite:///var/scoring.db"
    assert defaults.model_version == ""
    shipped = ModelRegistry.load(defaults.model_dir)  # the package's own models folder
    assert shipped.initial.description.strip() and shipped.initial.metrics["auc"] > 0.5
    custom = from_env(Settings, {"MODEL_DIR": "/models", "MODEL_VERSION": "2.0.0", "GRPC_PORT": "7"})
    assert (custom.model_dir, custom.model_version, custom.server.port) == ("/models", "2.0.0", 7)
