"""``python -m ingest_service``: serve until SIGTERM, configured by the environment."""

from __future__ import annotations

from creditscore.runtime import run_main

from .config import Settings
from .server import build_server


def main() -> None:
    run_main("ingest_service", Settings, build_server)


if __name__ == "__main__":
    main()
