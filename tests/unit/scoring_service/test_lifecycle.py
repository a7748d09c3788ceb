"""The model lifecycle without gRPC, over SQLite and PostgreSQL: the first
activation, activate / roll back along the activation stack, the challenger's rules,
request-id idempotency, replicas sharing one history, and the store's upgrade of an
older score table."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from creditscore.runtime import FailedPrecondition, InvalidArgument, NotFound, make_engine
from creditscore.scorecard.model import Scorecard
from scoring_service.lifecycle import FIRST_START_NOTE, Lifecycle, ModelAction, points_table
from scoring_service.registry import ModelLoadError, ModelRegistry
from scoring_service.store import ModelEventStore, ScoreRecord, ScoreRole, ScoreStore, score_history

VERSIONS = ("1.0.0", "1.1.0", "2.0.0")


def artifact(version: str) -> dict[str, Any]:
    return {
        "format": "creditscore.scorecard/1",
        "version": version,
        "description": f"hand-built {version}",
        "train_time": "2026-11-01T00:00:00Z",
        "scaling": {"pdo": 20.0, "factor": 20.0 / math.log(2), "offset": 600.0, "clamp": [350, 950]},
        "min_coverage": 0.5,
        "features": [
            {"name": "pay_ontime_ratio_12m", "coefficient": -1.0,
             "bins": [{"lo": None, "hi": 0.8, "points": 250.0}, {"lo": 0.8, "hi": 0.95, "points": 280.0},
                      {"lo": 0.95, "hi": None, "points": 300.0}],
             "missing": {"points": 270.0}},
            {"name": "identity_verified", "coefficient": -1.0,
             "bins": [{"lo": None, "hi": None, "points": 290.0}], "missing": {"points": 280.0}},
        ],
        "metrics": {"auc": 0.7, "ks": 0.3, "gini": 0.4},
    }


def folder(tmp_path: Path, versions: tuple[str, ...], name: str = "models") -> Path:
    out = tmp_path / name
    out.mkdir()
    for version in versions:
        (out / f"scorecard-{version}.json").write_text(json.dumps(artifact(version)))
    return out


class Clock:
    """Each call one second later."""

    def __init__(self) -> None:
        self._times: Iterator[datetime] = (
            datetime(2026, 11, 3, 8, 0, tzinfo=UTC) + timedelta(seconds=s) for s in range(10_000)
        )

    def __call__(self) -> datetime:
        return next(self._times)


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    await ScoreStore(engine).create_schema()
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry.load(folder(tmp_path, VERSIONS))


async def open_lifecycle(registry: ModelRegistry, engine, clock=None) -> Lifecycle:
    return await Lifecycle.open(registry, ModelEventStore(engine), clock=clock or Clock())


async def test_the_first_start_activates_the_initial_version_and_writes_it_down(tmp_path, engine):
    models = folder(tmp_path, VERSIONS)
    first = await open_lifecycle(ModelRegistry.load(models), engine)
    assert first.active.version == "2.0.0" and first.challenger is None
    events, token = await first.list_events(0, "")
    assert token == "" and len(events) == 1
    event = events[0]
    assert (event.sequence, event.action, event.version, event.active_stack, event.request_id, event.note) == (
        1, "ACTIVATED", "2.0.0", ("2.0.0",), None, FIRST_START_NOTE
    )
    assert first.state.activate_times == {"2.0.0": datetime(2026, 11, 3, 8, 0, tzinfo=UTC)}
    # Later starts follow the history, whatever MODEL_VERSION says, and write nothing.
    again = await open_lifecycle(ModelRegistry.load(models, "1.0.0"), engine)
    assert again.active.version == "2.0.0"
    assert len((await again.list_events(0, ""))[0]) == 1


async def test_activate_and_rollback_walk_the_activation_stack(registry, engine):
    life = await open_lifecycle(registry, engine)
    e = await life.activate("r-1", "1.0.0", "back to the old one")
    assert (e.action, e.version, e.previous_version, e.active_stack, e.note) == (
        "ACTIVATED", "1.0.0", "2.0.0", ("2.0.0", "1.0.0"), "back to the old one"
    )
    assert life.active.version == "1.0.0"
    await life.activate("r-2", "1.1.0")
    await life.activate("r-3", "1.1.0")  # already the champion: recorded, not pushed twice
    assert life.active.version == "1.1.0"

    e = await life.rollback("r-4", "1.1.0 misbehaves")
    assert (e.action, e.version, e.previous_version, e.active_stack) == (
        "ROLLED_BACK", "1.0.0", "1.1.0", ("2.0.0", "1.0.0")
    )
    assert life.active.version == "1.0.0"
    assert (await life.rollback("r-5")).active_version == "2.0.0"
    with pytest.raises(FailedPrecondition) as info:
        await life.rollback("r-6")
    assert info.value.reason == "NO_PREVIOUS_VERSION"
    assert life.active.version == "2.0.0"

    events, _ = await life.list_events(0, "")
    assert [(x.sequence, x.action, x.active_version) for x in events] == [
        (6, "ROLLED_BACK", "2.0.0"), (5, "ROLLED_BACK", "1.0.0"), (4, "ACTIVATED", "1.1.0"),
        (3, "ACTIVATED", "1.1.0"), (2, "ACTIVATED", "1.0.0"), (1, "ACTIVATED", "2.0.0"),
    ]
    # When each version last became the champion (the clock ticks once per event).
    t0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    assert life.state.activate_times == {
        "2.0.0": t0 + timedelta(seconds=5), "1.0.0": t0 + timedelta(seconds=4), "1.1.0": t0 + timedelta(seconds=3)
    }


async def test_the_challenger_is_never_the_champion(registry, engine):
    life = await open_lifecycle(registry, engine)
    e = await life.set_challenger("c-1", "1.1.0", "try the new one")
    assert (e.action, e.version, e.previous_version, e.challenger_version) == ("CHALLENGER_SET", "1.1.0", "", "1.1.0")
    assert life.challenger is not None and life.challenger.version == "1.1.0"
    with pytest.raises(FailedPrecondition) as info:
        await life.set_challenger("c-2", "2.0.0")
    assert info.value.reason == "CHALLENGER_IS_CHAMPION"
    # Promoting the challenger ends its challenge; rolling back does not bring it back.
    e = await life.activate("c-3", "1.1.0")
    assert (e.active_version, e.challenger_version) == ("1.1.0", "")
    assert life.challenger is None
    await life.set_challenger("c-4", "2.0.0")
    e = await life.rollback("c-5")  # back to 2.0.0, the challenger: cleared
    assert (e.active_version, e.challenger_version) == ("2.0.0", "")
    await life.set_challenger("c-6", "1.0.0")
    e = await life.set_challenger("c-7", "")
    assert (e.action, e.version, e.challenger_version) == ("CHALLENGER_CLEARED", "1.0.0", "")
    assert life.challenger is None


async def test_unknown_and_malformed_versions(registry, engine):
    life = await open_lifecycle(registry, engine)
    for call in (life.activate("x-1", "9.9.9"), life.set_challenger("x-2", "9.9.9")):
        with pytest.raises(NotFound) as info:
            await call
        assert (info.value.reason, info.value.metadata) == ("MODEL_NOT_FOUND", {"version": "9.9.9"})
    with pytest.raises(NotFound):
        life.model("9.9.9")
    assert life.model("").version == "2.0.0" and life.model("1.0.0").version == "1.0.0"
    with pytest.raises(InvalidArgument) as bad:
        await life.activate("", "../etc", "n" * 1001)
    assert [v.field for v in bad.value.violations] == ["request_id", "note", "version"]
    with pytest.raises(InvalidArgument) as bad:
        await life.activate("r" * 129, "")
    assert [(v.field, v.description) for v in bad.value.violations] == [
        ("request_id", "must be at most 128 characters"), ("version", "must be set")
    ]
    assert len((await life.list_events(0, ""))[0]) == 1  # nothing was written


async def test_a_retried_request_changes_nothing_and_a_reused_id_is_refused(registry, engine):
    life = await open_lifecycle(registry, engine)
    first = await life.activate("same", "1.0.0", "n")
    await life.activate("other", "1.1.0")
    again = await life.activate("same", "1.0.0", "n")  # a retry: the first answer, no new event
    assert again == first
    assert life.active.version == "1.1.0"
    for call in (life.activate("same", "1.1.0", "n"), life.activate("same", "1.0.0", "other note"),
                 life.rollback("same", "n"), life.set_challenger("same", "1.0.0", "n")):
        with pytest.raises(InvalidArgument) as info:
            await call
        assert info.value.reason == "REQUEST_ID_REUSED"
        assert [v.field for v in info.value.violations] == ["request_id"]
    assert [e.sequence for e in (await life.list_events(0, ""))[0]] == [3, 2, 1]


async def test_events_are_listed_newest_first_in_pages(registry, engine):
    life = await open_lifecycle(registry, engine)
    for i in range(4):
        await life.activate(f"p-{i}", VERSIONS[i % 2])
    seen, token = [], ""
    while True:
        page, token = await life.list_events(2, token)
        assert len(page) <= 2
        seen.extend(e.sequence for e in page)
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]
    with pytest.raises(InvalidArgument):
        await life.list_events(-1, "")
    with pytest.raises(InvalidArgument) as info:
        await life.list_events(2, "eyJiZWZvcmUiOiJ4In0")  # {"before":"x"}: not one of ours
    assert info.value.reason == "INVALID_PAGE_TOKEN"


async def test_replicas_share_one_history(tmp_path, registry, engine):
    a = await open_lifecycle(registry, engine)
    b = await open_lifecycle(registry, engine)
    await a.activate("a-1", "1.0.0")
    assert (a.active.version, b.active.version) == ("1.0.0", "2.0.0")  # b has not looked yet
    assert await b.refresh() is True
    assert b.active.version == "1.0.0" and await b.refresh() is False
    # b changes the state from what the table says, not from what it last saw.
    await a.set_challenger("a-2", "1.1.0")
    e = await b.rollback("b-1")
    assert (e.sequence, e.active_version, e.challenger_version) == (4, "2.0.0", "1.1.0")

    # Two replicas changing at once: both land, one after the other.
    first, second = await asyncio.gather(a.activate("a-3", "1.0.0"), b.activate("b-2", "1.1.0"))
    assert sorted([first.sequence, second.sequence]) == [5, 6]
    last, other = (second, first) if second.sequence > first.sequence else (first, second)
    assert last.active_stack[-2:] == (other.version, last.version)
    await a.refresh()
    await b.refresh()
    assert a.active.version == b.active.version == last.active_version

    # A replica without the new champion's file keeps scoring with the last one it has.
    partial = await open_lifecycle(ModelRegistry.load(folder(tmp_path, ("1.0.0", "1.1.0", "2.0.0"), "all")), engine)
    small = ModelRegistry.load(folder(tmp_path, ("1.0.0", "1.1.0"), "small"))
    narrow = await open_lifecycle(small, engine)
    await partial.activate("p-1", "2.0.0")
    assert await narrow.refresh() is False
    assert narrow.active.version == last.active_version
    # ... and refuses to start against a history whose champion it lacks.
    with pytest.raises(ModelLoadError, match="'2.0.0' is not among the loaded scorecards"):
        await open_lifecycle(small, engine)


class RacingEvents(ModelEventStore):
    """An event store whose first insert is beaten by another replica's change:
    the sequence it planned for is taken by the time it writes."""

    def __init__(self, engine, rival) -> None:
        super().__init__(engine)
        self.rival = rival
        self.results: list[bool] = []

    async def append(self, event) -> bool:
        if not self.results:
            await self.rival()
        ok = await super().append(event)
        self.results.append(ok)
        return ok


async def test_a_change_that_loses_the_race_is_planned_again(registry, engine):
    a = await open_lifecycle(registry, engine)
    racing = RacingEvents(engine, lambda: a.activate("a-1", "1.0.0"))
    b = await Lifecycle.open(registry, racing, clock=Clock())
    assert racing.results == []  # open() wrote nothing: the history had its first event
    e = await b.activate("b-1", "1.1.0")
    assert racing.results == [False, True]  # the first insert collided, the second landed
    assert (e.sequence, e.previous_version, e.active_stack) == (3, "1.0.0", ("2.0.0", "1.0.0", "1.1.0"))
    assert b.active.version == "1.1.0"


def test_points_table_labels_every_bin():
    rows = points_table(Scorecard.from_dict(artifact("1.0.0")))
    assert [(r.feature, r.label, r.points, r.lo, r.hi, r.missing) for r in rows] == [
        ("pay_ontime_ratio_12m", "< 0.8", 250.0, None, 0.8, False),
        ("pay_ontime_ratio_12m", "[0.8, 0.95)", 280.0, 0.8, 0.95, False),
        ("pay_ontime_ratio_12m", ">= 0.95", 300.0, 0.95, None, False),
        ("pay_ontime_ratio_12m", "no data", 270.0, None, None, True),
        ("identity_verified", "any value", 290.0, None, None, False),
        ("identity_verified", "no data", 280.0, None, None, True),
    ]
    two = Scorecard.from_dict({
        **artifact("2.0.0"),
        "format": "creditscore.scorecard/2",
        "features": [
            {"name": "bills_paid", "kind": "numeric", "reason_code": "B", "reason_text": "t",
             "missing_reason_code": "B_NO_DATA", "missing_text": "m", "coefficient": -1.0,
             "bins": [{"lo": None, "hi": None, "points": 20.0}],
             "special": [{"value": -999, "points": 5.0}], "missing": {"points": 8.0, "special_values": [-1]}},
            {"name": "housing", "kind": "categorical", "reason_code": "H", "reason_text": "t",
             "missing_reason_code": "H_NO_DATA", "missing_text": "m", "coefficient": -1.0,
             "bins": [{"categories": ["rent", "lodging"], "points": 5.0},
                      {"categories": ["own"], "other": True, "points": 9.0}],
             "missing": {"points": 4.0}},
        ],
    })
    assert [(r.label, r.points, r.lo, r.special, r.categories, r.other, r.missing) for r in points_table(two)] == [
        ("any value", 20.0, None, False, (), False, False),
        ("= -999", 5.0, -999.0, True, (), False, False),
        ("no data or = -1", 8.0, None, False, (), False, True),
        ("rent, lodging", 5.0, None, False, ("rent", "lodging"), False, False),
        ("own and any other", 9.0, None, False, ("own",), True, False),
        ("no data", 4.0, None, False, (), False, True),
    ]
    assert {a.value for a in ModelAction} == {"ACTIVATED", "ROLLED_BACK", "CHALLENGER_SET", "CHALLENGER_CLEARED"}


async def test_champion_and_shadow_scores_are_stored_together_or_not_at_all(registry, engine):
    store = ScoreStore(engine)
    when = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    values = {"pay_ontime_ratio_12m": 0.9, "identity_verified": 1.0}
    champion = ScoreRecord.from_result("s-1", registry.get("2.0.0").score_one(values), values, when)
    shadow = ScoreRecord.from_result(
        "s-1", registry.get("1.0.0").score_one(values), values, when, role=ScoreRole.CHALLENGER
    )
    champion_id, shadow_id = await store.record_scores(champion, shadow)
    rows = await store.history("s-1")
    assert [(r.id, r.role, r.model_version, r.shadow_of) for r in rows] == [
        (shadow_id, ScoreRole.CHALLENGER, "1.0.0", champion_id), (champion_id, ScoreRole.CHAMPION, "2.0.0", None)
    ]
    # A shadow row the database refuses takes the champion's row down with it.
    with pytest.raises(IntegrityError):
        await store.record_scores(replace(champion, subject_id="s-2"), replace(shadow, subject_id="s-2", coverage=None))
    assert await store.history("s-2") == []


async def test_a_large_window_is_sampled_across_the_whole_of_it(engine):
    store = ScoreStore(engine)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    # A champion's and a challenger's row for each of 1,000 requests: their ids
    # alternate, which a sample taking every k-th id would alias with.
    rows = [
        {"subject_id": f"s-{i // 2}", "model_version": ("2.0.0", "1.0.0")[i % 2], "state": "SCORED",
         "score": 400 + i // 2 % 500, "band": "POOR", "probability_of_bad": 0.5, "coverage": 1.0, "reasons": [],
         "features": {"identity_verified": float(i // 2)}, "score_time": t0 + timedelta(minutes=i // 2),
         "role": ("CHAMPION", "CHALLENGER")[i % 2], "improvements": []}
        for i in range(2000)
    ]
    async with engine.begin() as conn:
        await conn.execute(score_history.insert(), rows)
    until = t0 + timedelta(days=1)
    whole = await store.window("2.0.0", None, until, limit=1000)
    assert (whole.in_window, whole.sampled, len(whole.scores)) == (1000, False, 1000)
    minutes = [v["identity_verified"] for v in whole.vectors]
    assert minutes == sorted(minutes, reverse=True)  # most recent first
    assert whole.scores[0] == 400 + 999 % 500  # each score with its own vector

    sample = await store.window("2.0.0", None, until, limit=200)
    assert (sample.in_window, sample.sampled) == (1000, True)
    assert 150 <= len(sample.scores) <= 200
    picked = sorted(v["identity_verified"] for v in sample.vectors)
    # Spread over the window: every fifth of it is represented, none twice.
    assert {int(m) // 200 for m in picked} == {0, 1, 2, 3, 4} and len(set(picked)) == len(picked)
    later = await store.window("2.0.0", t0 + timedelta(minutes=900), until, limit=200)
    assert (later.in_window, later.sampled, len(later.scores)) == (100, False, 100)
