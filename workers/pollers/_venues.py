"""The ccxt constructor options of a venue: shared defaults, then what the venue's own module
(``_binance``, ``_okx``) says differs. A new venue is a module with ``ID``, ``options()`` and
``urls(base)``, listed in ``VENUES``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from topics import ConfigError
from workers.pollers import _binance, _okx

if TYPE_CHECKING:
    from workers.pollers._exchange import PollerConfig


@dataclass(frozen=True, slots=True)
class Venue:
    options: Callable[[], dict[str, Any]]
    urls: Callable[[str], dict[str, Any]]


VENUES: dict[str, Venue] = {m.ID: Venue(m.options, m.urls) for m in (_binance, _okx)}
#: exchanges whose REST base URL we know how to point at the simulator (``exchange_urls``)
SIMULATED = tuple(VENUES)


def client_options(exchange_id: str, url: str | None, config: PollerConfig) -> dict[str, Any]:
    """ccxt constructor options: spot only, one request to load markets, and (for the
    simulator) every REST URL of the exchange's spot API pointed at ``url``."""
    options: dict[str, Any] = {"enableRateLimit": True, "timeout": config.timeout_ms}
    if config.rate_limit_ms is not None:
        options["rateLimit"] = config.rate_limit_ms
    venue = VENUES.get(exchange_id)
    if venue is not None:
        options["options"] = venue.options()
    if url is None:
        return options
    if venue is None:
        raise ConfigError(
            "WARMFLEET_EXCHANGE_URLS",
            f"{exchange_id}={url}",
            f"URL overrides are supported for {', '.join(SIMULATED)} only",
        )
    options["urls"] = venue.urls(url.rstrip("/"))
    return options
