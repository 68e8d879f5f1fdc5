"""``python -m headlab``: the command line (``headlab.cli``)."""

import sys

from .cli import main

__all__: list[str] = []

sys.exit(main())
