from __future__ import annotations


class StackError(Exception):
    """The local stack could not be installed, started or stopped; the message says why."""


class PortTaken(StackError):
    """A port the stack needs is held by a process warmfleet did not start."""
