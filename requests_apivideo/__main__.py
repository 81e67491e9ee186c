"""Run the command line: ``python -m requests_apivideo``."""

import sys

from .cli import main

sys.exit(main())
