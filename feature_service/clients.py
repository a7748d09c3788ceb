"""The gRPC adapter of the feature service's one dependency: ``GrpcScorer``
implements ``scores.Scorer`` over the scoring service's ``ScoreBatch`` and
``ListModels``. The only feature module besides the servicer that knows gRPC.

Errors, for both calls: the scoring service not reached in time (UNAVAILABLE or
DEADLINE_EXCEEDED, after the channel's own retries) or failing itself (INTERNAL,
UNKNOWN) is ``Unavailable`` with reason ``SCORING_UNAVAILABLE`` (its status in
the metadata's ``code``), so that the RPC being served fails as UNAVAILABLE and
its caller tries again later; any other failure (the request refused) is an
INTERNAL ``DomainError`` (``DOWNSTREAM_ERROR``, the scoring service's status and
reason in its metadata), as is a reply that does not answer the request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

from creditscore.runtime import Deadline, DeadlineExceeded, DomainError, Unavailable, downstream_errors
from creditscore.scoring.v1 import scoring_pb2, scoring_pb2_grpc

from .scores import MAX_SCORE_BATCH, SCORING_UNAVAILABLE

__all__ = ["GrpcScorer"]

_SERVICE = "scoring_service"
#: Models per ``ListModels`` page (the most the scoring service gives).
_MODELS_PAGE = 100


@contextlib.contextmanager
def _scoring_errors() -> Iterator[None]:
    """``downstream_errors`` for the scoring service, with "not reached in time"
    (UNAVAILABLE, DEADLINE_EXCEEDED, or no time left for the next call) and its
    own failures (INTERNAL, UNKNOWN) as ``Unavailable`` ``SCORING_UNAVAILABLE``."""
    try:
        with downstream_errors(_SERVICE):
            yield
    except (Unavailable, DeadlineExceeded) as exc:
        metadata = {"service": _SERVICE, "code": "DEADLINE_EXCEEDED", **exc.metadata}
        raise Unavailable(
            f"the scoring service could not be reached ({metadata['code']})",
            reason=SCORING_UNAVAILABLE,
            metadata=metadata,
        ) from None


class GrpcScorer:
    """Asks the scoring service: scores with ``ScoreBatch``, the active model with
    ``ListModels``. Each method's ``timeout`` bounds the whole method, every call
    it makes included."""

    def __init__(self, stub: scoring_pb2_grpc.ScoringServiceAsyncStub) -> None:
        self._stub = stub

    async def score(
        self, items: Sequence[tuple[str, Mapping[str, float | None]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        """The active model's score of each ``(subject_id, vector)``, in order: one
        ``ScoreBatch`` per ``MAX_SCORE_BATCH`` items (one call for the usual batch),
        none for no items. Each item's features go into the request in the
        vector's order, unset where there is no data (built in place with
        ``add``: about ten times cheaper than a ``FeatureValue`` per feature
        copied in, which a rescore of the whole table pays per subject)."""
        scores: list[scoring_pb2.Score] = []
        deadline = Deadline(timeout)
        with _scoring_errors():
            for start in range(0, len(items), MAX_SCORE_BATCH):
                chunk = items[start:start + MAX_SCORE_BATCH]
                request = scoring_pb2.ScoreBatchRequest()
                for subject_id, values in chunk:
                    add = request.items.add(subject_id=subject_id).features.add
                    for name, value in values.items():
                        if value is None:
                            add(name=name)
                        else:
                            add(name=name, value=value)
                reply = await self._stub.ScoreBatch(request, timeout=deadline.timeout())
                _check_answers(chunk, reply.scores)
                scores.extend(reply.scores)
        return scores

    async def active_model(self, timeout: float) -> str:
        """The version of the model the scoring service scores with (its champion),
        from ``ListModels`` (every page until it is found)."""
        deadline = Deadline(timeout)
        token = ""
        with _scoring_errors():
            while True:
                reply = await self._stub.ListModels(
                    scoring_pb2.ListModelsRequest(page_size=_MODELS_PAGE, page_token=token),
                    timeout=deadline.timeout(),
                )
                for model in reply.models:
                    if model.active:
                        return model.version
                token = reply.next_page_token
                if not token:
                    break
        raise DomainError(
            "the scoring service lists no active model", reason="SCORING_NO_ACTIVE_MODEL",
            metadata={"service": _SERVICE},
        )


def _check_answers(
    items: Sequence[tuple[str, Mapping[str, float | None]]], scores: Sequence[scoring_pb2.Score]
) -> None:
    """``DomainError`` (``SCORING_REPLY_MISMATCH``) unless ``scores`` holds one score
    per item, for the item's subject, in order."""
    if len(scores) != len(items) or any(
        score.subject_id != subject_id for score, (subject_id, _) in zip(scores, items, strict=False)
    ):
        raise DomainError(
            "the scoring service answered other vectors than asked",
            reason="SCORING_REPLY_MISMATCH",
            metadata={"service": _SERVICE, "asked": str(len(items)), "answered": str(len(scores))},
        )
