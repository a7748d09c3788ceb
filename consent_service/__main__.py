"""``python -m consent_service``: serve ConsentService until SIGTERM."""

from __future__ import annotations

from creditscore.runtime import run_main

from .config import Settings
from .server import build_server


def main() -> None:
    run_main("consent", Settings, build_server)


if __name__ == "__main__":
    main()
