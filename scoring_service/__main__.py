"""``python -m scoring_service``: the scoring service, configured from the environment."""

from __future__ import annotations

from creditscore.runtime import run_main

from .config import Settings
from .server import build_server


def main() -> None:
    run_main("scoring_service", Settings, build_server)


if __name__ == "__main__":
    main()
