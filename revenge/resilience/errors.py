"""Errors shared by the resilience helpers and the code that calls dependencies."""
from __future__ import annotations


class CircuitOpenError(Exception):
    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name} is open")
        self.name = name
        self.retry_after = retry_after


class BulkheadError(Exception):
    reason = ""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"bulkhead {name} rejected the call ({self.reason})")
        self.name = name
        self.retry_after = retry_after


class BulkheadFullError(BulkheadError):
    reason = "full"


class BulkheadTimeoutError(BulkheadError):
    reason = "timeout"


class DependencyError(Exception):
    """A dependency answered with an HTTP status (or did not answer: ``status`` None)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None,
                 sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.sent = sent  # False when the request provably never reached the dependency
