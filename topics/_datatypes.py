"""One set of data-type names for TTL policy, phase multipliers, warm jobs and keys."""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    TICKERS = "tickers"
    BOOKS = "books"
    CANDLES = "candles"
    OVERVIEW = "overview"
    SIGNALS = "signals"
    VOLATILITY = "volatility"
    DEFAULT = "default"

    @classmethod
    def parse(cls, name: str) -> DataType:
        """Known names map to themselves; anything else uses the ``default`` row."""
        try:
            return cls(name)
        except ValueError:
            return cls.DEFAULT


#: data types a warm job can ask a poller for (the rest are derived by agents)
POLLED: frozenset[DataType] = frozenset({DataType.TICKERS, DataType.BOOKS, DataType.CANDLES})
