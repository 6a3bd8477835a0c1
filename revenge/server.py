"""Starts granian programmatically: ASGI interface, uvloop, lifespan on, one worker.

One worker per instance on purpose: sessions, encoders and the memory cache live in that process
(ARCHITECTURE.md, Runtime). The validated config travels to the worker as JSON in the
environment, because granian spawns workers as fresh processes from an import string.
"""
from __future__ import annotations

import os
from typing import Any

import orjson

from .core.config import Config

CONFIG_ENV = "REVENGE_INTERNAL_CONFIG_JSON"


def run_server(config: Config, layers: dict[str, Any]) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels

    os.environ[CONFIG_ENV] = orjson.dumps(layers).decode()
    level = {"debug": LogLevels.debug, "info": LogLevels.info, "warning": LogLevels.warning, "error": LogLevels.error}
    server = Granian(
        "revenge.web.app:create_app",
        factory=True,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        workers=1,
        websockets=False,
        log_level=level[config.logging.level],
        workers_kill_timeout=int(config.shutdown.timeout) or None,
    )
    server.serve()
