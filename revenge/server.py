"""Starts granian programmatically: ASGI interface, uvloop, lifespan on, one worker.

One worker per instance on purpose: sessions, encoders and the memory cache live in that process
(ARCHITECTURE.md, Runtime). The validated config travels to the worker as JSON in the
environment, because granian spawns workers as fresh processes from an import string.
"""
from __future__ import annotations

import os
import signal
from typing import Any

import orjson

from .core.config import Config

CONFIG_ENV = "REVENGE_INTERNAL_CONFIG_JSON"


def run_server(config: Config, config_file: str | None, overrides: dict[str, Any]) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    class RevengeGranian(Granian):  # type: ignore[misc]
        """granian answers SIGHUP by respawning its workers, which would end every session; revenge
        forwards SIGHUP to the worker instead, where it means "reload the configuration"."""

        def _signal_workers(self, sig: int) -> None:
            for worker in list(getattr(self, "wrks", [])):
                pid = getattr(getattr(worker, "inner", None), "pid", None)
                if pid:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            """The first SIGTERM/SIGINT drains gracefully; a second one forces exit at once with
            128 + signal number (granian alone would keep waiting for the drain)."""
            if getattr(self, "_revenge_interrupted", False):
                signum = int(args[0]) if args and isinstance(args[0], int) else int(signal.SIGTERM)
                self._signal_workers(signal.SIGKILL)
                os._exit(128 + signum)
            self._revenge_interrupted = True
            self._signal_workers(signal.SIGUSR1)  # "shutdown begins": not ready from now on
            super().signal_handler_interrupt(*args, **kwargs)

        def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
            self._signal_workers(signal.SIGHUP)

    os.environ[CONFIG_ENV] = orjson.dumps({"config_file": config_file, "overrides": overrides}).decode()
    level = {"debug": LogLevels.debug, "info": LogLevels.info, "warning": LogLevels.warning, "error": LogLevels.error}
    server = RevengeGranian(
        "revenge.web.app:create_app",
        factory=True,
        address=config.server.host,
        port=config.server.port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=int(config.server.header_read_timeout * 1000)),
        workers=1,
        websockets=False,
        log_level=level[config.logging.level],
        workers_kill_timeout=int(config.shutdown.timeout) or None,
    )
    server.serve()


def run_transcoder(host: str, port: int, api_key: str, workroot: str, max_encoders: int) -> None:
    """The remote transcoder service, on the same granian runner."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    os.environ["REVENGE_INTERNAL_TRANSCODER_JSON"] = orjson.dumps(
        {"api_key": api_key, "workroot": workroot, "max_encoders": max_encoders}).decode()
    Granian(
        "revenge.playback.transcode.service:create_transcoder_app", factory=True, address=host, port=port,
        interface=Interfaces.ASGI, loop=Loops.uvloop, http=HTTPModes.http1, workers=1, websockets=False,
    ).serve()
