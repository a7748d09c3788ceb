"""``creditscore models`` and ``creditscore drift``: govern the scorecards of a
running scoring service through its API.

    creditscore models list                          versions, champion (*) and challenger (c)
    creditscore models show [VERSION]                one version (default: the champion) and its points table
    creditscore models activate VERSION [--note T]   make VERSION the champion
    creditscore models rollback [--note T]           back to the champion before the current one
    creditscore models challenger VERSION|--clear    shadow-score VERSION beside the champion, or stop
    creditscore models events [--limit N]            the activation history, newest first
    creditscore drift [--version V] [--since ISO] [--until ISO] [--min-scores N]

The scoring service answers services only: the commands send the token in
``CREDITSCORE_TOKEN`` (a service's, e.g. ``export CREDITSCORE_TOKEN=$(creditscore
token --client-id operator --client-secret ...)``) and use ``TLS_*`` when set.

Every command takes ``--scoring host:port`` (default localhost:50054). A change is
sent with a fresh request id (or ``--request-id``), so that the channel's retry on
UNAVAILABLE never applies it twice. A failed call prints the status, the reason and
every field violation, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeAlias

import grpc

from creditscore.runtime import CallError, from_timestamp, to_timestamp, tool_channel
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

__all__ = ["DEFAULT_SCORING_ADDR", "drift", "drift_main", "models", "models_main", "parse_time"]

DEFAULT_SCORING_ADDR = "localhost:50054"
_TIMEOUT = 10.0

Out = Callable[[str], None]
#: The stub on an asyncio channel: a type of the generated stubs (.pyi) only.
Stub: TypeAlias = "scoring_pb2_grpc.ScoringServiceAsyncStub"


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is read as UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _when(message: Any, field: str) -> str:
    value = from_timestamp(message, field)
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _action(action: scoring_pb2.ModelEventAction.ValueType) -> str:
    return scoring_pb2.ModelEventAction.Name(action).removeprefix("MODEL_EVENT_ACTION_")


def _status(status: scoring_pb2.DriftStatus.ValueType) -> str:
    return scoring_pb2.DriftStatus.Name(status).removeprefix("DRIFT_STATUS_")


def _print_event(event: scoring_pb2.ModelEvent, out: Out) -> None:
    challenger = event.challenger_version or "-"
    line = (
        f"#{event.sequence:<4} {_when(event, 'event_time')}  {_action(event.action):<18} "
        f"{event.version or '-':<12} champion {event.active_version}, challenger {challenger}"
    )
    out(line + (f"  ({event.note})" if event.note else ""))


def _print_error(error: CallError) -> None:
    print(f"error: {error.code.name}: {error.message}" + (f" [{error.reason}]" if error.reason else ""),
          file=sys.stderr)
    for violation in error.violations:
        print(f"  {violation.field}: {violation.description}", file=sys.stderr)


async def _call(address: str, work: Callable[[Stub], Awaitable[int]]) -> int:
    # A service's token (CREDITSCORE_TOKEN): the scoring service answers services only.
    channel = tool_channel(address)
    try:
        return await work(scoring_pb2_grpc.ScoringServiceStub(channel))
    except grpc.aio.AioRpcError as exc:
        _print_error(CallError.from_rpc_error(exc))
        return 1
    finally:
        await channel.close()


def _models_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="creditscore models", description="List, inspect, activate and roll back scorecard versions."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--scoring", default=DEFAULT_SCORING_ADDR, help="scoring service host:port")
    change = argparse.ArgumentParser(add_help=False)
    change.add_argument("--note", default="", help="why (kept in the event history)")
    change.add_argument("--request-id", default="", help="idempotency key (default: a fresh one)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", parents=[common], help="loaded versions")
    show = sub.add_parser("show", parents=[common], help="one version and its points table")
    show.add_argument("version", nargs="?", default="", help="default: the champion")
    activate = sub.add_parser("activate", parents=[common, change], help="make a version the champion")
    activate.add_argument("version")
    sub.add_parser("rollback", parents=[common, change], help="back to the previous champion")
    challenger = sub.add_parser("challenger", parents=[common, change], help="set or clear the challenger")
    which = challenger.add_mutually_exclusive_group(required=True)
    which.add_argument("version", nargs="?", default=None)
    which.add_argument("--clear", action="store_true", help="stop shadow scoring")
    events = sub.add_parser("events", parents=[common], help="the activation history, newest first")
    events.add_argument("--limit", type=int, default=20, help="how many events (default 20)")
    return parser


class _Command(NamedTuple):
    """One ``creditscore models`` action's parsed arguments, request id and output."""

    args: argparse.Namespace
    request_id: str
    out: Out


async def _list(stub: Stub, c: _Command) -> None:
    token = ""
    c.out(f"{'':2}{'version':<14}{'trained':<22}{'activated':<22}{'AUC':>6}{'KS':>7}  description")
    while True:
        page = await stub.ListModels(scoring_pb2.ListModelsRequest(page_token=token), timeout=_TIMEOUT)
        for m in page.models:
            mark = "*" if m.active else ("c" if m.challenger else " ")
            c.out(f"{mark} {m.version:<14}{_when(m, 'train_time'):<22}{_when(m, 'activate_time'):<22}"
                  f"{m.auc:>6.3f}{m.ks:>7.3f}  {m.description}")
        token = page.next_page_token
        if not token:
            break
    c.out("(* champion, c challenger)")


async def _show(stub: Stub, c: _Command) -> None:
    reply = await stub.GetModel(scoring_pb2.GetModelRequest(version=c.args.version), timeout=_TIMEOUT)
    m = reply.model
    role = "champion" if m.active else ("challenger" if m.challenger else "loaded")
    c.out(f"{m.version} ({role}, {m.format}): {m.description}")
    c.out(f"trained {_when(m, 'train_time')}; AUC {m.auc:.3f}, KS {m.ks:.3f}, Gini {m.gini:.3f}")
    c.out(f"score = {reply.offset:g} + {reply.pdo:g}/ln2 * ln(good:bad odds); "
          f"intercept {reply.intercept_points:g} points; min coverage {reply.min_coverage:g}")
    feature = ""
    for row in reply.points:
        if row.feature != feature:
            feature = row.feature
            c.out(f"  {feature}")
        c.out(f"    {row.bin_label:<24}{row.points:>9.2f}")


async def _activate(stub: Stub, c: _Command) -> None:
    reply = await stub.ActivateModel(
        scoring_pb2.ActivateModelRequest(request_id=c.request_id, version=c.args.version, note=c.args.note),
        timeout=_TIMEOUT,
    )
    c.out(f"champion: {reply.model.version}")
    _print_event(reply.event, c.out)


async def _rollback(stub: Stub, c: _Command) -> None:
    reply = await stub.RollbackModel(
        scoring_pb2.RollbackModelRequest(request_id=c.request_id, note=c.args.note), timeout=_TIMEOUT
    )
    c.out(f"champion: {reply.model.version} (was {reply.event.previous_version})")
    _print_event(reply.event, c.out)


async def _challenger(stub: Stub, c: _Command) -> None:
    version = "" if c.args.clear else c.args.version
    reply = await stub.SetChallenger(
        scoring_pb2.SetChallengerRequest(request_id=c.request_id, version=version, note=c.args.note),
        timeout=_TIMEOUT,
    )
    c.out(f"challenger: {reply.challenger.version if reply.HasField('challenger') else 'none'}")
    _print_event(reply.event, c.out)


async def _events(stub: Stub, c: _Command) -> None:
    left, token = max(c.args.limit, 1), ""
    while left > 0:
        page = await stub.ListModelEvents(
            scoring_pb2.ListModelEventsRequest(page_size=min(left, 100), page_token=token),
            timeout=_TIMEOUT,
        )
        for event in page.events[:left]:
            _print_event(event, c.out)
        left -= len(page.events)
        token = page.next_page_token
        if not token:
            break


_ACTIONS: dict[str, Callable[[Stub, _Command], Awaitable[None]]] = {
    "list": _list,
    "show": _show,
    "activate": _activate,
    "rollback": _rollback,
    "challenger": _challenger,
    "events": _events,
}


async def models(argv: list[str], *, out: Out = print) -> int:
    """Runs one ``creditscore models`` command; returns the exit status."""
    args = _models_parser().parse_args(argv)
    command = _Command(args, getattr(args, "request_id", "") or f"cli-{uuid.uuid4()}", out)
    action = _ACTIONS[args.action]

    async def run(stub: Stub) -> int:
        await action(stub, command)
        return 0

    return await _call(args.scoring, run)


def _drift_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="creditscore drift",
        description="Population stability (PSI) of a scorecard's recent scores against its training "
        "population: below 0.1 stable, 0.1-0.25 monitor, 0.25 or more shifted.",
    )
    parser.add_argument("--scoring", default=DEFAULT_SCORING_ADDR, help="scoring service host:port")
    parser.add_argument("--version", default="", help="default: the champion")
    parser.add_argument("--since", type=parse_time, default=None,
                        help="ISO 8601 date or time (UTC unless a zone is given); default: the first score")
    parser.add_argument("--until", type=parse_time, default=None, help="default: now")
    parser.add_argument("--min-scores", type=int, default=0, help="fewer scores give INSUFFICIENT_DATA (default 100)")
    return parser


async def drift(argv: list[str], *, out: Out = print) -> int:
    """Runs ``creditscore drift``; returns the exit status."""
    args = _drift_parser().parse_args(argv)

    async def run(stub: Stub) -> int:
        request = scoring_pb2.GetDriftRequest(
            version=args.version,
            since_time=to_timestamp(args.since),
            until_time=to_timestamp(args.until),
            min_scores=args.min_scores,
        )
        reply = await stub.GetDrift(request, timeout=_TIMEOUT)
        since = _when(reply, "since_time") if reply.HasField("since_time") else "the first score"
        out(f"scorecard {reply.version}: {reply.scores_used} scores from {since} to {_when(reply, 'until_time')}"
            + (f" (a sample of the {reply.scores_in_window} in the window)" if reply.sampled else ""))
        out(f"INSUFFICIENT_DATA share {reply.insufficient_data_share:.1%} "
            f"(training {reply.training_insufficient_data_share:.1%})")
        psi = f"{reply.score_psi:.4f}" if reply.HasField("score_psi") else "-"
        out(f"{'score':<34}{psi:>8}  {_status(reply.status)}")
        for f in reply.features:
            value = f"{f.psi:.4f}" if f.HasField("psi") else "-"
            out(f"  {f.feature:<32}{value:>8}  {_status(f.status)}")
        return 0

    return await _call(args.scoring, run)


def main(argv: list[str]) -> int:
    """``creditscore models ...``."""
    return asyncio.run(models(argv))


models_main = main


def drift_main(argv: list[str]) -> int:
    return asyncio.run(drift(argv))
