"""The fleet's processes, a sub-package each: ``pollers`` (ccxt, one module per venue),
``agents`` (the Faust app, symbol stream, overview), ``analytics`` (pure), ``cli`` (the
``warmfleet`` command, the ``run`` supervisor, ``status``); shared ``settings`` and ``logs``."""

from __future__ import annotations

__all__: list[str] = []
