"""HTTP reader API over ``MultiTierCache``."""

from __future__ import annotations

from readers._app import Reader, create_app
from readers._openapi import openapi_document
from readers._routes import BadRequest

__all__ = ["BadRequest", "Reader", "create_app", "openapi_document"]
