"""The root of warmfleet's exceptions; each package area derives its own from it."""

from __future__ import annotations


class WarmfleetError(Exception):
    """Base of every error warmfleet raises on purpose."""


class ConfigError(WarmfleetError, ValueError):
    """A setting or config file value is invalid; the message names the field and the value."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field}: {problem} (got {value!r})")


class BrokerUnavailable(WarmfleetError):
    """Kafka could not be reached, or refused to create a topic."""
