"""Model lifecycle: which loaded scorecard version is the champion (scores every
request), which one is the challenger (shadow-scored beside it), and the history of
both, shared by every replica through the score database.

No gRPC here: the servicer translates protobuf to these calls and the domain errors
travel through the runtime's interceptor.

State and history
-----------------
The truth is the ``model_events`` table (``store.ModelEventStore``): each event
(ACTIVATED, ROLLED_BACK, CHALLENGER_SET, CHALLENGER_CLEARED) records the state after
it, and the event with the highest ``sequence`` is the current state. The state
holds the *activation stack*: every activation pushes its version (unless it is the
champion already), every rollback pops one, so that rolling back from C after
A -> B -> C gives B, and again A, and then ``NO_PREVIOUS_VERSION``. A version that
becomes the champion stops being the challenger.

On the first start against an empty history the registry's initial version
(``MODEL_VERSION``, or else the highest version loaded) is activated and that event
written; afterwards ``MODEL_VERSION`` no longer decides. A history whose champion is
not in this replica's model folder stops the start (``ModelLoadError``): the service
refuses to score with a model nobody chose.

Replicas converge
-----------------
Each replica keeps the state in memory (scoring reads no table for it). The replica
that handles a change applies it before answering; every replica re-reads the latest
event every ``refresh_seconds`` (``MODEL_REFRESH_SECONDS``, default 5). So after a
change answers, every replica scores with the new champion within one refresh
interval plus one database read: the bound on how long two replicas may disagree.
A refresh that fails (database unreachable) keeps the last state and is retried at
the next interval.

Concurrency and retries
-----------------------
A change reads the latest event, works out the next state, and inserts it as
``sequence + 1``; when another replica inserted that sequence first, the insert
fails and the change is worked out again on the new state (a few times, then
ABORTED ``CONCURRENT_MODEL_CHANGE``). Every change carries a ``request_id``: a retry
of the same request returns the event the first attempt wrote, the same id on a
different request is INVALID_ARGUMENT ``REQUEST_ID_REUSED``.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from creditscore.runtime import (
    Aborted,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
    decode_page_token,
    encode_page_token,
    page_size,
    utcnow,
)
from creditscore.scorecard.model import Scorecard, is_valid_version

from .registry import ModelLoadError, ModelRegistry
from .store import ModelEventRecord, ModelEventStore

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_REFRESH_SECONDS",
    "MAX_NOTE_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_REQUEST_ID_LENGTH",
    "Lifecycle",
    "ModelAction",
    "ModelState",
    "PointsRow",
    "check_version",
    "points_table",
]

log = logging.getLogger("scoring_service.lifecycle")

DEFAULT_REFRESH_SECONDS = 5.0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_REQUEST_ID_LENGTH = 128
MAX_NOTE_LENGTH = 1000
_CHANGE_ATTEMPTS = 5
FIRST_START_NOTE = "activated at first start (MODEL_VERSION, or else the highest version loaded)"


class ModelAction(enum.Enum):
    ACTIVATED = "ACTIVATED"
    ROLLED_BACK = "ROLLED_BACK"
    CHALLENGER_SET = "CHALLENGER_SET"
    CHALLENGER_CLEARED = "CHALLENGER_CLEARED"


@dataclass(frozen=True)
class ModelState:
    """What a replica scores with. Replaced whole, never changed, so that a request
    reads one consistent champion/challenger pair."""

    active: Scorecard
    challenger: Scorecard | None
    sequence: int  # of the event it came from
    activate_times: Mapping[str, datetime]  # version -> when it last became champion


class PointsRow(NamedTuple):
    """One bin of a scorecard feature and its points."""

    feature: str
    label: str  # "< 0.8", "[0.8, 0.95)", ">= 0.95", "any value", "= -999", "rent, own", "no data"
    points: float
    lo: float | None  # numeric bins: inclusive; None: unbounded, or not a numeric bin
    hi: float | None  # numeric bins: exclusive; None: unbounded, or not a numeric bin
    missing: bool = False  # the "no data" bin
    special: bool = False  # one special value of a numeric feature (``lo`` holds it)
    categories: tuple[str, ...] = ()  # a categorical bin's categories
    other: bool = False  # a categorical bin that also takes unseen categories


def _label(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "any value"
    if lo is None:
        return f"< {hi:g}"
    if hi is None:
        return f">= {lo:g}"
    return f"[{lo:g}, {hi:g})"


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def points_table(card: Scorecard) -> list[PointsRow]:
    """Per feature in model order, its bins as the model lays them out (regular
    bins lowest first, special-value bins, then the "no data" bin) with the points
    each gives."""
    rows: list[PointsRow] = []
    for feature in card.artifact["features"]:
        name = feature["name"]
        for b in feature["bins"]:
            if "categories" in b:
                categories = tuple(str(c) for c in b["categories"])
                other = bool(b.get("other", False))
                label = ", ".join(categories) + (" and any other" if other else "")
                rows.append(PointsRow(name, label, float(b["points"]), None, None,
                                      categories=categories, other=other))
            else:
                lo, hi = _number(b.get("lo")), _number(b.get("hi"))
                rows.append(PointsRow(name, _label(lo, hi), float(b["points"]), lo, hi))
        for b in feature.get("special") or ():
            value = float(b["value"])
            rows.append(PointsRow(name, f"= {value:g}", float(b["points"]), value, None, special=True))
        missing = feature["missing"]
        pooled = [float(v) for v in missing.get("special_values") or ()]
        label = "no data" + "".join(f" or = {v:g}" for v in pooled)
        rows.append(PointsRow(name, label, float(missing["points"]), None, None, missing=True))
    return rows


def check_version(v: Violations, value: str, field: str = "version", *, required: bool) -> None:
    """A version names a scorecard file: 1-64 of ``[A-Za-z0-9._-]``, starting
    alphanumeric; empty only where it is optional."""
    if not value:
        if required:
            v.add(field, "must be set")
        return
    if not is_valid_version(value):
        v.add(field, "must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit")


def _check_change(v: Violations, request_id: str, note: str) -> None:
    """The request id: 1 to ``MAX_REQUEST_ID_LENGTH`` printable characters; the note:
    at most ``MAX_NOTE_LENGTH`` characters, no NUL (PostgreSQL cannot store one in
    text: the change answered INTERNAL)."""
    if not request_id:
        v.add("request_id", "must be set")
    elif len(request_id) > MAX_REQUEST_ID_LENGTH:
        v.add("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} characters")
    elif not request_id.isprintable():
        v.add("request_id", "must be printable characters only")
    if len(note) > MAX_NOTE_LENGTH:
        v.add("note", f"must be at most {MAX_NOTE_LENGTH} characters")
    elif "\x00" in note:
        v.add("note", "must not contain NUL characters")


def _digest(params: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


class Lifecycle:
    """The champion and challenger of one replica, kept in step with the
    ``model_events`` history. Build with ``await Lifecycle.open(...)``."""

    def __init__(
        self,
        registry: ModelRegistry,
        events: ModelEventStore,
        state: ModelState,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self._events = events
        self._state = state
        self._clock = clock
        self._unloadable: int | None = None  # the last sequence whose champion is not loaded here

    @classmethod
    async def open(
        cls,
        registry: ModelRegistry,
        events: ModelEventStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> Lifecycle:
        """Reads the current state, writing the first activation when the history is
        empty. ``ModelLoadError`` when the history's champion is not loaded here."""
        latest = await events.latest()
        if latest is None:
            first = registry.initial.version
            event = ModelEventRecord(
                sequence=1,
                action=ModelAction.ACTIVATED.value,
                version=first,
                previous_version="",
                active_version=first,
                challenger_version="",
                active_stack=(first,),
                note=FIRST_START_NOTE,
                event_time=clock(),
            )
            # When the insert loses, another replica wrote the first event: read it.
            latest = event if await events.append(event) else await events.latest()
            if latest is None:
                raise ModelLoadError("could neither write nor read the first model activation")
        elif latest.active_version != registry.initial.version:
            log.info(
                "the model history makes %s the champion; the initial version %s (MODEL_VERSION, or the "
                "highest loaded) decides only on a first start", latest.active_version, registry.initial.version,
            )
        if latest.active_version not in registry:
            raise ModelLoadError(
                f"the score database's active model {latest.active_version!r} is not among the "
                f"loaded scorecards ({', '.join(registry.versions())}); add its file to MODEL_DIR"
            )
        placeholder = ModelState(registry.get(latest.active_version), None, 0, {})
        lifecycle = cls(registry, events, placeholder, clock=clock)
        await lifecycle._apply(latest)
        return lifecycle

    # -- reading

    @property
    def state(self) -> ModelState:
        return self._state

    @property
    def active(self) -> Scorecard:
        return self._state.active

    @property
    def challenger(self) -> Scorecard | None:
        return self._state.challenger

    def model(self, version: str, field: str = "version") -> Scorecard:
        """The loaded scorecard of ``version`` (empty: the champion).
        ``InvalidArgument`` for a malformed version, ``NotFound`` (MODEL_NOT_FOUND)
        for one that is not loaded."""
        v = Violations()
        check_version(v, version, field, required=False)
        v.raise_if_any("the request is not valid")
        if not version:
            return self._state.active
        if version not in self.registry:
            raise NotFound(
                f"no scorecard {version!r} is loaded (loaded: {', '.join(self.registry.versions())})",
                reason="MODEL_NOT_FOUND",
                metadata={"version": version},
            )
        return self.registry.get(version)

    async def list_events(self, requested_page_size: int, page_token: str) -> tuple[list[ModelEventRecord], str]:
        """A page of the history, newest first, and the next page's token (empty on
        the last)."""
        size = page_size(requested_page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        position = decode_page_token(page_token)
        before = None
        if position is not None:
            before = position.get("before")
            if not isinstance(before, int) or isinstance(before, bool):
                raise InvalidArgument(
                    "page_token is not a token this service issued",
                    [FieldViolation("page_token", "not a valid page token")],
                    reason="INVALID_PAGE_TOKEN",
                )
        rows = await self._events.page(limit=size + 1, before_sequence=before)
        page = rows[:size]
        token = encode_page_token({"before": page[-1].sequence}) if len(rows) > size else ""
        return page, token

    # -- keeping in step

    async def refresh(self) -> bool:
        """Re-reads the latest event; True when the state changed."""
        latest = await self._events.latest()
        if latest is None or latest.sequence <= self._state.sequence:
            return False
        return await self._apply(latest)

    async def run_refresher(self, interval: float) -> None:
        """Refreshes every ``interval`` seconds until cancelled; a failed refresh is
        logged and retried at the next interval."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # noqa: BLE001 - keep scoring with the last state
                log.warning("could not refresh the model state; keeping the last one", exc_info=True)

    async def _apply(self, event: ModelEventRecord) -> bool:
        """Makes ``event``'s state this replica's, unless a newer one is applied
        already or its champion is not loaded here (then the last state stays and
        the problem is logged once)."""
        if event.sequence <= self._state.sequence:
            return False
        if event.active_version not in self.registry:
            if self._unloadable != event.sequence:
                self._unloadable = event.sequence
                log.error(
                    "model event %d makes %r the champion, which is not loaded here; "
                    "still scoring with %r", event.sequence, event.active_version, self._state.active.version,
                )
            return False
        challenger = None
        if event.challenger_version:
            if event.challenger_version in self.registry:
                challenger = self.registry.get(event.challenger_version)
            else:
                log.error("challenger %r is not loaded here: no shadow scores", event.challenger_version)
        times = await self._events.activation_times(
            [ModelAction.ACTIVATED.value, ModelAction.ROLLED_BACK.value]
        )
        state = ModelState(self.registry.get(event.active_version), challenger, event.sequence, times)
        if state.sequence <= self._state.sequence:  # a newer one was applied meanwhile
            return False
        self._state = state
        return True

    # -- changing

    async def activate(self, request_id: str, version: str, note: str = "") -> ModelEventRecord:
        """Makes ``version`` the champion (pushing it on the activation stack unless
        it is the champion already; it stops being the challenger)."""
        v = Violations()
        _check_change(v, request_id, note)
        check_version(v, version, required=True)
        v.raise_if_any("the request is not valid")

        def plan(latest: ModelEventRecord) -> ModelEventRecord:
            self.model(version)  # NOT_FOUND when not loaded
            stack = latest.active_stack
            if stack[-1] != version:
                stack = (*stack, version)
            return self._next(
                latest, ModelAction.ACTIVATED, version, latest.active_version, note,
                active=version,
                challenger="" if latest.challenger_version == version else latest.challenger_version,
                stack=stack,
            )

        return await self._change(request_id, "ActivateModel", {"version": version, "note": note}, plan)

    async def rollback(self, request_id: str, note: str = "") -> ModelEventRecord:
        """Makes the champion before the current one the champion again (pops the
        activation stack). ``FailedPrecondition`` NO_PREVIOUS_VERSION when the
        current one is the first."""
        v = Violations()
        _check_change(v, request_id, note)
        v.raise_if_any("the request is not valid")

        def plan(latest: ModelEventRecord) -> ModelEventRecord:
            if len(latest.active_stack) < 2:
                raise FailedPrecondition(
                    f"no version was active before {latest.active_version}",
                    reason="NO_PREVIOUS_VERSION",
                    metadata={"active_version": latest.active_version},
                )
            stack = latest.active_stack[:-1]
            target = stack[-1]
            if target not in self.registry:
                raise FailedPrecondition(
                    f"the previous version {target!r} is not loaded here",
                    reason="MODEL_NOT_LOADED",
                    metadata={"version": target},
                )
            return self._next(
                latest, ModelAction.ROLLED_BACK, target, latest.active_version, note,
                active=target,
                challenger="" if latest.challenger_version == target else latest.challenger_version,
                stack=stack,
            )

        return await self._change(request_id, "RollbackModel", {"note": note}, plan)

    async def set_challenger(self, request_id: str, version: str, note: str = "") -> ModelEventRecord:
        """Sets the challenger to ``version``, or clears it when ``version`` is
        empty. ``FailedPrecondition`` CHALLENGER_IS_CHAMPION for the champion."""
        v = Violations()
        _check_change(v, request_id, note)
        check_version(v, version, required=False)
        v.raise_if_any("the request is not valid")

        def plan(latest: ModelEventRecord) -> ModelEventRecord:
            if not version:
                return self._next(
                    latest, ModelAction.CHALLENGER_CLEARED, latest.challenger_version,
                    latest.challenger_version, note,
                    active=latest.active_version, challenger="", stack=latest.active_stack,
                )
            self.model(version)  # NOT_FOUND when not loaded
            if version == latest.active_version:
                raise FailedPrecondition(
                    f"{version} is the champion; it cannot be its own challenger",
                    reason="CHALLENGER_IS_CHAMPION",
                    metadata={"version": version},
                )
            return self._next(
                latest, ModelAction.CHALLENGER_SET, version, latest.challenger_version, note,
                active=latest.active_version, challenger=version, stack=latest.active_stack,
            )

        return await self._change(request_id, "SetChallenger", {"version": version, "note": note}, plan)

    def _next(
        self,
        latest: ModelEventRecord,
        action: ModelAction,
        version: str,
        previous: str,
        note: str,
        *,
        active: str,
        challenger: str,
        stack: tuple[str, ...],
    ) -> ModelEventRecord:
        return ModelEventRecord(
            sequence=latest.sequence + 1,
            action=action.value,
            version=version,
            previous_version=previous,
            active_version=active,
            challenger_version=challenger,
            active_stack=stack,
            note=note,
            event_time=self._clock(),
        )

    async def _change(
        self,
        request_id: str,
        method: str,
        params: Mapping[str, str],
        plan: Callable[[ModelEventRecord], ModelEventRecord],
    ) -> ModelEventRecord:
        """Idempotent on ``request_id``: writes the event ``plan`` works out from the
        latest one, re-planning when another replica wrote first; applies it here."""
        digest = _digest(params)
        for _ in range(_CHANGE_ATTEMPTS):
            done = await self._events.by_request_id(request_id)
            if done is not None:
                if (done.request_method, done.request_digest) != (method, digest):
                    raise InvalidArgument(
                        "request_id was already used for a different request",
                        [FieldViolation("request_id", "already used for a different request")],
                        reason="REQUEST_ID_REUSED",
                    )
                await self.refresh()
                return done
            latest = await self._events.latest()
            if latest is None:  # open() writes the first event; only a wiped table gets here
                raise FailedPrecondition("the model history is empty", reason="NO_MODEL_HISTORY")
            event = replace(plan(latest), request_id=request_id, request_method=method, request_digest=digest)
            if await self._events.append(event):
                await self._apply(event)
                return event
        raise Aborted(
            "the model state kept changing under this request; retry it with the same request_id",
            reason="CONCURRENT_MODEL_CHANGE",
        )
