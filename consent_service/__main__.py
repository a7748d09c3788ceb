"""``python -m consent_service``: serve ConsentService until SIGTERM;
``python -m consent_service migrate`` upgrades its database and exits;
``python -m consent_service hash-secret`` reads a service's secret on stdin and
prints its hash for ``SERVICE_CREDENTIALS_FILE``."""

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
    if args[:1] == ["hash-secret"]:
        sys.exit(_hash_secret())
    if args[:1] == ["migrate"]:
        sys.exit(run_migrate("consent_service", from_env(Settings).database_url, MIGRATIONS, args[1:]))
    run_main("consent", Settings, build_server)


def _hash_secret() -> int:
    """The secret from stdin (so that it stays out of the shell's history), hashed."""
    from .registry import hash_secret

    secret = sys.stdin.readline().strip()
    if not secret or " " in secret:
        print("give the secret (no spaces) on stdin", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


if __name__ == "__main__":
    main()
