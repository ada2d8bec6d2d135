"""The one way an analytics state becomes a table value and back (changelog JSON)."""

from __future__ import annotations

from typing import Any, Self


class TableValue:
    """A slotted dataclass whose fields round-trip through a plain dict."""

    __slots__: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: that deep-copies every field, and this runs per event
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**data)
