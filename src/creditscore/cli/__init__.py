"""The ``creditscore`` command.

    creditscore run        the whole suite on SQLite with a simulated population,
                           ending in score lookups through the gateway; serves until Ctrl-C
    creditscore simulate   a simulated population: summary, or records as JSON lines
    creditscore train      train a scorecard (see ``creditscore train --help``)
    creditscore export-training
                           the point-in-time training matrix as a Parquet file, from the
                           running suite (model-development consent only) or the simulator
    creditscore score      score every row of a CSV with a scorecard (``--help``)
    creditscore lookup     one partner lookup through a running gateway (score or threshold)
    creditscore token      a token for client credentials (--credentials FILE), from the consent
                           service or the gateway's relay
    creditscore revoke     an operator's revocation: one token, a client's or a subject's tokens,
                           or a whole client
    creditscore models     list, show, activate, roll back scorecards; set the challenger; events
    creditscore drift      PSI of the score and each feature against the training population
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]

#: Each command and the module of this package (or elsewhere) whose ``main(argv)`` runs it.
COMMANDS: dict[str, str] = {
    "run": "creditscore.cli.run",
    "simulate": "creditscore.cli.simulate",
    "train": "creditscore.cli.train",
    "export-training": "creditscore.cli.export_training",
    "score": "creditscore.cli.score",
    "lookup": "creditscore.cli.lookup",
    "token": "creditscore.cli.token",
    "revoke": "creditscore.cli.revoke",
    "models": "creditscore.cli.models",
    "drift": "creditscore.cli.drift",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    module = COMMANDS.get(command)
    if module is None:
        print(f"creditscore: unknown command {command!r}\n{__doc__}", file=sys.stderr)
        return 2
    return int(importlib.import_module(module).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
