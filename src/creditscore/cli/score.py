"""``creditscore score``: every row of a CSV scored with a scorecard file
(``creditscore.scorecard.tabular``), written with score, band, probability of bad,
reasons and state."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from creditscore.scorecard.errors import InputError
from creditscore.scorecard.model import Scorecard, ScorecardError
from creditscore.scorecard.tabular import score_csv

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``creditscore score --model MODEL --csv FILE --out FILE``."""
    parser = argparse.ArgumentParser(
        prog="creditscore score",
        description="Score every row of a CSV with a scorecard; writes the rows with score, band, "
        "probability_of_bad, reasons and state.",
    )
    parser.add_argument("--model", required=True, help="a scorecard-<version>.json file")
    parser.add_argument("--csv", required=True, metavar="FILE", help="the rows to score (a header row first)")
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the scored rows")
    args = parser.parse_args(argv)
    try:
        card = Scorecard.load(args.model)
    except (ScorecardError, OSError) as exc:
        print(f"creditscore score: cannot load the model: {exc}", file=sys.stderr)
        return 1
    try:
        result = score_csv(card, args.csv, args.out)
    except InputError as exc:
        print(f"creditscore score: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"creditscore score: {exc}", file=sys.stderr)
        return 1
    if result.absent:
        print(
            f"creditscore score: the table has no column for {', '.join(result.absent)}: "
            "scored as no data for every row",
            file=sys.stderr,
        )
    mean = "" if result.mean_score is None or math.isnan(result.mean_score) else f", mean score {result.mean_score:.1f}"
    print(
        f"scored {result.rows} rows with scorecard {card.version}: {result.rows - result.insufficient} scored, "
        f"{result.insufficient} INSUFFICIENT_DATA{mean}; wrote {args.out}"
    )
    return 0
