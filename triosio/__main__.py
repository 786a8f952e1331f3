"""``python -m triosio``: the command line (see ``triosio run --help``)."""

import sys

from ._cli import main

sys.exit(main())
