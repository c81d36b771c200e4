"""``python -m netlab [--quick] ...``: see ``netlab.lab`` and ``netlab.scenario``."""

import sys

from netlab.lab import main

sys.exit(main())
