"""Benchmarks: each ``python -m bench.<name> [--quick]`` prints its figures, how it
measured them, and ends with one ``RESULT <name> key=value ...`` line. Figures from
a run on the project's machine are in ``docs/benchmarks.md``.

The peers (scorecardpy, optbinning, scikit-learn, pandas) are the optional
dependency group ``bench``: ``pip install -e '.[bench]'``. Nothing in the product or
its tests imports this package."""
