"""An error a service raises for the web layer to render: status, code, sentence, extras."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                 problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []
        self.problems = problems
