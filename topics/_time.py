"""Wall-clock time in the records' unit (epoch milliseconds); one definition for every
package that stamps ``as_of`` / ``written_at`` / ``at_ms``."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
