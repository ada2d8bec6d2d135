"""``python -m workers.cli``: the same as the ``warmfleet`` command."""

from __future__ import annotations

import sys

from workers.cli import main

sys.exit(main())
