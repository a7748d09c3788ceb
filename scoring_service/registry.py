"""The scorecards a scoring service has loaded.

Every ``scorecard-*.json`` of the model folder is loaded and validated at start. The
*initial* version is the one asked for (``MODEL_VERSION``), or else the highest
version found: it becomes the champion when the score database has no activation
history yet; afterwards the history decides which version is active
(``lifecycle.Lifecycle``). A folder without a model, a file that is not a valid
scorecard, a file whose name disagrees with the version inside it, or an asked-for
version that is not there are all ``ModelLoadError``: the service refuses to start
rather than score with a model nobody chose.

The service scores feature vectors of catalog features (numbers, by catalog name).
A scorecard with a feature that is not a catalog feature (one trained on an
analyst's CSV with ``creditscore train --csv``), or that treats a catalog feature
as categorical, could never see its data through the service: every request would
come out INSUFFICIENT_DATA or score the feature as "no data". Such a file is
refused at load with an error naming the file and the features (score it with
``creditscore score --csv`` instead).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.scorecard.binning import NUMERIC
from creditscore.scorecard.model import Scorecard, ScorecardError, version_key

__all__ = ["ARTIFACT_GLOB", "ModelLoadError", "ModelRegistry", "servable_problem"]

ARTIFACT_GLOB = "scorecard-*.json"


class ModelLoadError(RuntimeError):
    """The model folder cannot give the service a scorecard to score with."""


_CATALOG = frozenset(FEATURE_NAMES)


def servable_problem(card: Scorecard) -> str | None:
    """Why the scoring service cannot serve ``card`` (features that are not catalog
    features, catalog features it treats as categorical), or None when it can."""
    unknown = [name for name in card.features if name not in _CATALOG]
    categorical = [name for name in card.features if name in _CATALOG and card.kinds[name] != NUMERIC]
    problems = []
    if unknown:
        problems.append(
            f"feature(s) {', '.join(repr(n) for n in unknown)} are not catalog features "
            "(a model trained on a CSV table scores CSV files: creditscore score --csv)"
        )
    if categorical:
        names = ", ".join(repr(n) for n in categorical)
        problems.append(f"catalog feature(s) {names} must be numeric, not categorical")
    return "; ".join(problems) or None


class ModelRegistry:
    """Loaded scorecards by version, newest first, and the initial one. Every one
    must be servable (``servable_problem``): ``ModelLoadError`` otherwise."""

    def __init__(self, models: Mapping[str, Scorecard], initial_version: str = "") -> None:
        if not models:
            raise ModelLoadError("no scorecard loaded")
        for version, card in models.items():
            if card.version != version:
                raise ModelLoadError(f"scorecard {card.version!r} registered as {version!r}")
            problem = servable_problem(card)
            if problem:
                raise ModelLoadError(f"scorecard {version} cannot be served: {problem}")
        self._ordered = tuple(sorted(models.values(), key=lambda c: version_key(c.version), reverse=True))
        self._by_version = dict(models)
        if initial_version:
            if initial_version not in self._by_version:
                raise ModelLoadError(
                    f"MODEL_VERSION {initial_version!r} is not among the loaded scorecards "
                    f"({', '.join(self.versions())})"
                )
            self._initial = self._by_version[initial_version]
        else:
            self._initial = self._ordered[0]

    @classmethod
    def load(cls, model_dir: str | Path, initial_version: str = "") -> ModelRegistry:
        """Loads every ``scorecard-*.json`` in ``model_dir``."""
        folder = Path(model_dir)
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {folder} does not exist")
        models: dict[str, Scorecard] = {}
        for path in sorted(folder.glob(ARTIFACT_GLOB)):
            try:
                card = Scorecard.load(path)
            except (ScorecardError, OSError) as exc:
                raise ModelLoadError(f"cannot load scorecard {path}: {exc}") from None
            expected = f"scorecard-{card.version}.json"
            if path.name != expected:
                raise ModelLoadError(f"{path} holds version {card.version!r}; name it {expected}")
            problem = servable_problem(card)
            if problem:
                raise ModelLoadError(f"cannot serve scorecard {path}: {problem}")
            models[card.version] = card
        if not models:
            raise ModelLoadError(
                f"no scorecard found in {folder} (expected {ARTIFACT_GLOB}; "
                "train one with creditscore train)"
            )
        return cls(models, initial_version)

    @property
    def initial(self) -> Scorecard:
        """The version to activate when there is no activation history yet:
        ``MODEL_VERSION``, or else the highest version."""
        return self._initial

    def get(self, version: str) -> Scorecard:
        """The scorecard of ``version``; KeyError when it is not loaded."""
        return self._by_version[version]

    def __contains__(self, version: object) -> bool:
        return version in self._by_version

    def versions(self) -> tuple[str, ...]:
        """Loaded versions, newest first."""
        return tuple(c.version for c in self._ordered)

    def __iter__(self) -> Iterator[Scorecard]:
        """Loaded scorecards, newest first."""
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)
