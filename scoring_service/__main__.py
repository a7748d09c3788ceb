"""``python -m scoring_service``: the scoring service, configured from the environment;
``python -m scoring_service migrate`` upgrades its database and exits."""

from __future__ import annotations

import sys

from creditscore.runtime import from_env, run_main, run_migrate

from .config import Settings
from .migrations import MIGRATIONS
from .server import build_server


def main(argv: list[str] | None = None) -> None:
    """Serves until SIGTERM; ``migrate [--check]`` instead brings the database to
    this build's schema and exits (what a Kubernetes Job runs before the pods)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:
        sys.exit(run_migrate("scoring_service", from_env(Settings).database_url, MIGRATIONS, args[1:]))
    run_main("scoring_service", Settings, build_server)


if __name__ == "__main__":
    main()
