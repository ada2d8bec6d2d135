"""The clock's one error: its control log (Kafka) could not be reached or used."""

from __future__ import annotations

from topics import WarmfleetError


class ClockError(WarmfleetError):
    """The clock's control topics (``control.phase``, ``control.clock``) could not be used."""
