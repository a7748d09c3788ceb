"""``python -m feature_service``: serve the FeatureService until SIGTERM."""

from __future__ import annotations

from creditscore.runtime import run_main

from .config import Settings
from .server import build_server


def main() -> None:
    run_main("feature_service", Settings, build_server)


if __name__ == "__main__":
    main()
