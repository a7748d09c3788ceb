"""A fake of the feature service's scoring port (``feature_service.scores.Scorer``)
that records its calls: the score of a vector is a function of its values, each
score it gives has a new score_id (0 for a vector with no value), and it can be
told to fail as an unreachable scoring service does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from creditscore.common.v1 import common_pb2
from creditscore.runtime import Unavailable
from creditscore.scoring.v1 import scoring_pb2
from feature_service.scores import SCORING_UNAVAILABLE


def values_of(features: Mapping[str, float | None]) -> dict[str, float | None]:
    return dict(features)


class FakeScorer:
    def __init__(self, model: str = "v1") -> None:
        self.model = model
        self.down = False
        #: Every ``score`` call: its (subject_id, values) items.
        self.calls: list[list[tuple[str, dict[str, float | None]]]] = []
        self.model_calls = 0
        #: The timeout of every call, ``score`` and ``active_model`` alike.
        self.timeouts: list[float] = []
        #: The last score given for each subject.
        self.given: dict[str, scoring_pb2.Score] = {}
        self._next_id = 0

    def _unavailable(self) -> Unavailable:
        return Unavailable("the scoring service could not be reached (UNAVAILABLE)", reason=SCORING_UNAVAILABLE)

    async def score(
        self, items: Sequence[tuple[str, Mapping[str, float | None]]], timeout: float
    ) -> list[scoring_pb2.Score]:
        assert timeout > 0
        self.timeouts.append(timeout)
        if self.down:
            raise self._unavailable()
        assert 1 <= len(items) <= 256
        self.calls.append([(subject_id, values_of(features)) for subject_id, features in items])
        out = []
        for subject_id, features in items:
            present = [v for v in values_of(features).values() if v is not None]
            score = scoring_pb2.Score(subject_id=subject_id, model_version=self.model,
                                      coverage=len(present) / len(features))
            if present:
                self._next_id += 1
                score.state = common_pb2.SCORE_STATE_SCORED
                score.score = 350 + int(sum(abs(v) for v in present) * 7) % 600
                score.score_id = self._next_id
            else:
                score.state = common_pb2.SCORE_STATE_INSUFFICIENT_DATA
            score.score_time.GetCurrentTime()
            self.given[subject_id] = score
            out.append(score)
        return out

    async def active_model(self, timeout: float) -> str:
        assert timeout > 0
        self.timeouts.append(timeout)
        if self.down:
            raise self._unavailable()
        self.model_calls += 1
        return self.model

    def scored(self) -> list[str]:
        """The subject ids of every call's items, call after call."""
        return [subject_id for call in self.calls for subject_id, _ in call]
