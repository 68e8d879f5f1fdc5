"""``python -m headlab``: the command line (``headlab.cli``)."""

import sys

from .cli import main

sys.exit(main())
