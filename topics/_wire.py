"""Record bytes on the wire, as a Faust consumer of the record decodes them."""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.models.base import registry

_NAMESPACES: dict[type[faust.Record], str] = {}


def namespace_of(record_type: type[faust.Record]) -> str:
    """The namespace Faust registered ``record_type`` under (its ``namespace=`` class
    option, by default ``module.qualname``), found in Faust's public model registry."""
    namespace = _NAMESPACES.get(record_type)
    if namespace is None:
        found = [ns for ns, model in registry.items() if model is record_type]
        if not found:
            raise LookupError(f"{record_type!r} is not a registered Faust model")
        namespace = _NAMESPACES[record_type] = found[0]
    return namespace


def record_bytes(record_type: type[faust.Record], fields: dict[str, Any]) -> bytes:
    """``fields`` as the JSON a Faust consumer of ``record_type`` decodes (with ``__faust``),
    without building the record: the agents emit one per symbol per batch."""
    return orjson.dumps({**fields, "__faust": {"ns": namespace_of(record_type)}})
