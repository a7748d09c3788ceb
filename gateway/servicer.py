"""CreditScoreService: protobuf in, the partner's lookup, protobuf out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.metrics import Meter

from creditscore.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from creditscore.runtime import (
    KIND_PARTNER,
    Batcher,
    Deadline,
    DomainError,
    InvalidArgument,
    RateLimiter,
    ResourceExhausted,
    Unauthenticated,
    Violations,
    current_principal,
)

from .config import Settings
from .lookup import (
    Answer,
    ConsentPort,
    FeaturePort,
    Lookup,
    ScoreQuestion,
    ScoringPort,
    ThresholdQuestion,
    answer_lookups,
)

__all__ = ["MAX_BATCH_CHECKS", "CreditScoreServicer", "item_error"]

#: A servicer method's context (its request and response types are the method's).
Context = grpc.aio.ServicerContext[Any, Any]

_log = logging.getLogger(__name__)

#: The most checks one BatchCheckCreditThreshold may carry.
MAX_BATCH_CHECKS = 100


def _partner_id() -> str:
    """The partner calling (from its token). Without one (``AUTH_MODE=disabled``)
    the gateway has no partner to check an authorization for, so it answers nothing."""
    principal = current_principal()
    if principal is None or principal.kind != KIND_PARTNER:
        raise Unauthenticated(
            "the gateway answers partners only: send a partner's token", reason="TOKEN_MISSING"
        )
    return principal.id


class CreditScoreServicer(gateway_pb2_grpc.CreditScoreServiceServicer):
    """Each lookup joins the next batch (``creditscore.runtime.Batcher``): the
    lookups that arrive while a batch is being answered are answered together,
    three downstream calls for all of them (``answer_lookups``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        consent: ConsentPort,
        features: FeaturePort,
        scoring: ScoringPort,
        tracer: trace.Tracer | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._settings = settings
        self._ports = {"consent": consent, "features": features, "scoring": scoring}
        self._limits = (
            RateLimiter(settings.partner_lookup_rate, settings.partner_lookup_burst)
            if settings.partner_lookup_rate > 0 else None
        )
        self._lookups: Batcher[Lookup, Answer | DomainError] = Batcher(
            self._answer_batch, name="lookup",
            max_batch=settings.batch_max_size, max_in_flight=settings.batch_max_in_flight,
            tracer=tracer, meter=meter,
        )

    def _partner(self, lookups: int = 1) -> str:
        """The partner calling, within its lookup rate (``PARTNER_LOOKUP_RATE``, per
        replica): RESOURCE_EXHAUSTED (``LOOKUP_RATE_LIMITED``) with RetryInfo beyond it."""
        partner_id = _partner_id()
        if self._limits is not None:
            wait = self._limits.allow(partner_id, lookups)
            if wait:
                raise ResourceExhausted(
                    f"more than {self._settings.partner_lookup_rate:g} lookups a second "
                    f"(bursts of {self._settings.partner_lookup_burst:g}); retry later",
                    reason="LOOKUP_RATE_LIMITED", retry_after=wait,
                )
        return partner_id

    async def _answer_batch(self, lookups: Sequence[Lookup], timeout: float) -> list[Answer | DomainError]:
        return await answer_lookups(lookups, deadline=Deadline(timeout), **self._ports)  # type: ignore[arg-type]

    async def _ask(self, lookup: Lookup, deadline: Deadline) -> Answer:
        result = await self._lookups.call(lookup, deadline)
        if isinstance(result, DomainError):
            raise result
        return result

    def _deadline(self, context: Context) -> Deadline:
        return Deadline.from_context(
            context,
            self._settings.lookup_timeout_seconds,
            cap=self._settings.lookup_timeout_cap_seconds,
        )

    async def GetCreditScore(
        self, request: gateway_pb2.GetCreditScoreRequest, context: Context
    ) -> gateway_pb2.GetCreditScoreResponse:
        question = ScoreQuestion(request.subject_id, request.purpose, request.transaction_id)
        return await self._ask(Lookup(question, self._partner()), self._deadline(context))  # type: ignore[return-value]

    async def CheckCreditThreshold(
        self, request: gateway_pb2.CheckCreditThresholdRequest, context: Context
    ) -> gateway_pb2.CheckCreditThresholdResponse:
        question = ThresholdQuestion(
            request.subject_id, request.purpose, request.transaction_id, request.threshold
        )
        return await self._ask(Lookup(question, self._partner()), self._deadline(context))  # type: ignore[return-value]

    async def BatchCheckCreditThreshold(
        self, request: gateway_pb2.BatchCheckCreditThresholdRequest, context: Context
    ) -> gateway_pb2.BatchCheckCreditThresholdResponse:
        _partner_id()
        _check_batch(request)
        partner_id = self._partner(len(request.checks))
        deadline = self._deadline(context)

        async def one(check: gateway_pb2.CheckCreditThresholdRequest) -> gateway_pb2.ThresholdResult:
            question = ThresholdQuestion(
                check.subject_id, check.purpose, check.transaction_id, check.threshold
            )
            try:
                response = await self._ask(Lookup(question, partner_id), deadline)
            except DomainError as exc:
                return gateway_pb2.ThresholdResult(error=item_error(exc))
            except Exception:
                _log.exception("a batched threshold check failed")
                return gateway_pb2.ThresholdResult(error=gateway_pb2.ItemError(
                    code=grpc.StatusCode.INTERNAL.value[0], message="internal error", reason="INTERNAL"
                ))
            return gateway_pb2.ThresholdResult(response=response)  # type: ignore[arg-type]

        # All at once: they join the same batches of lookups.
        results = await asyncio.gather(*(one(c) for c in request.checks))
        return gateway_pb2.BatchCheckCreditThresholdResponse(results=results)


def _check_batch(request: gateway_pb2.BatchCheckCreditThresholdRequest) -> None:
    """The batch as a whole: 1-100 checks, each transaction id once. Each check on
    its own is validated (and refused) in its own result."""
    v = Violations()
    if not request.checks:
        v.add("checks", "must hold at least one check")
    elif len(request.checks) > MAX_BATCH_CHECKS:
        v.add("checks", f"must hold at most {MAX_BATCH_CHECKS} checks")
    seen: dict[str, int] = {}
    for i, check in enumerate(request.checks):
        txn = check.transaction_id
        if txn and txn in seen:
            v.add(f"checks[{i}].transaction_id", f"repeats checks[{seen[txn]}].transaction_id")
        seen.setdefault(txn, i)
    v.raise_if_any("the batch is not valid")


def item_error(exc: DomainError) -> gateway_pb2.ItemError:
    """The status one check alone would have failed with, as a batch item's error."""
    error = gateway_pb2.ItemError(
        code=exc.code.value[0], message=exc.message, reason=exc.reason, metadata=exc.metadata
    )
    if isinstance(exc, InvalidArgument):
        error.field_violations.extend(f"{v.field}: {v.description}" for v in exc.violations)
    return error
