"""``python -m creditscore.cli``: the ``creditscore`` command."""

import sys

from creditscore.cli import main

sys.exit(main())
