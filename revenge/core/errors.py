"""A small error hierarchy: what stops start-up versus what a request can recover from."""
from __future__ import annotations


class RevengeError(Exception):
    """Base of every error revenge raises on purpose."""


class FatalError(RevengeError):
    """Start-up cannot continue; the message says why, for a human."""


class ConfigError(FatalError):
    """A configuration was rejected. ``problems`` lists ``{"key", "message"}`` for each issue."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"{p['key']}: {p['message']}" for p in problems)
        super().__init__(f"invalid configuration: {lines}")
