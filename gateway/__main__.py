"""``python -m gateway``: the CreditScoreService, configured from the environment."""

from creditscore.runtime import run_main

from .config import Settings
from .server import build_server


def main() -> None:
    run_main("gateway", Settings, build_server)


if __name__ == "__main__":
    main()
