"""The scorecards a scoring service has loaded.

Every ``scorecard-*.json`` of the model folder is loaded and validated at start. The
*initial* version is the one asked for (``MODEL_VERSION``), or else the highest
version found: it becomes the champion when the score database has no activation
history yet; afterwards the history decides which version is active
(``lifecycle.Lifecycle``). A folder without a model, a file that is not a valid
scorecard, a file whose name disagrees with the version inside it, or an asked-for
version that is not there are all ``ModelLoadError``: the service refuses to start
rather than score with a model nobody chose.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from .scorecard import Scorecard, ScorecardError, version_key

__all__ = ["ARTIFACT_GLOB", "ModelLoadError", "ModelRegistry"]

ARTIFACT_GLOB = "scorecard-*.json"


class ModelLoadError(RuntimeError):
    """The model folder cannot give the service a scorecard to score with."""


class ModelRegistry:
    """Loaded scorecards by version, newest first, and the initial one."""

    def __init__(self, models: Mapping[str, Scorecard], initial_version: str = "") -> None:
        if not models:
            raise ModelLoadError("no scorecard loaded")
        for version, card in models.items():
            if card.version != version:
                raise ModelLoadError(f"scorecard {card.version!r} registered as {version!r}")
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
            models[card.version] = card
        if not models:
            raise ModelLoadError(
                f"no scorecard found in {folder} (expected {ARTIFACT_GLOB}; "
                "train one with python -m scoring_service.training)"
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
