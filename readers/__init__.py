"""HTTP reader API over ``MultiTierCache``, served by its own HTTP/1.1 server (asyncio +
httptools on uvloop, ``readers._http``) or by granian (``--server granian``)."""

from __future__ import annotations

from readers._app import Reader, ReaderApp, create_app
from readers._limits import ReaderLimits, ServerOptions, add_server_arguments, server_options
from readers._openapi import openapi_document
from readers._origin import OriginWatch
from readers._routes import BadRequest
from readers._server import running_reader, serve

__all__ = [
    "BadRequest",
    "OriginWatch",
    "Reader",
    "ReaderApp",
    "ReaderLimits",
    "ServerOptions",
    "add_server_arguments",
    "create_app",
    "openapi_document",
    "running_reader",
    "serve",
    "server_options",
]
