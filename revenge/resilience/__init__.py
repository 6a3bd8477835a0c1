"""Circuit breaker, retry, bulkhead and rate limiting, used by the running server."""
