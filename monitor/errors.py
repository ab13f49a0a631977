"""The monitor's one exception tree.

Foreign exceptions (httpx, websockets, aiosqlite, tomllib, ...) are translated into these at one
boundary per library, so the rest of the code, and the process exit code, deal only with this tree::

    MonitorError
    ├── ConfigError            bad settings; exit 2 (all problems listed at once)
    ├── DecodeError            a frame or payload that does not have the expected shape
    ├── GenesysError           anything that went wrong talking to Genesys Cloud
    │   ├── AuthError          credentials refused: retrying will not help; exit 1
    │   ├── CapacityError      the selected agents do not fit in the configured OAuth clients
    │   ├── TransportError     network failure, timeout, dropped socket: retried
    │   └── ApiError           an HTTP error answer (status, code, message, correlation id)
    │       ├── RateLimited    429, with the Retry-After to honour: retried
    │       ├── NotFound       404
    │       ├── ServerError    5xx: retried
    │       └── BadResponse    a 2xx answer whose body is not what the API documents
    ├── StoreError             the database could not be opened, migrated or written; exit 1
    └── ActionError            a presence change that was refused before anything was sent
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """Invalid settings. `problems` holds one line per problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid configuration")


class DecodeError(MonitorError):
    """A frame or a response body that does not have the shape Genesys documents."""


class GenesysError(MonitorError):
    """Something went wrong talking to Genesys Cloud."""


class AuthError(GenesysError):
    """The OAuth client's credentials were refused."""


class CapacityError(GenesysError):
    """More agents are selected than the configured OAuth clients can watch."""

    def __init__(self, agents: int, capacity: int, clients_needed: int) -> None:
        self.agents = agents
        self.capacity = capacity
        self.clients_needed = clients_needed
        super().__init__(
            f"{agents} agents selected but the configured OAuth clients can watch at most "
            f"{capacity}; {clients_needed} OAuth clients are needed"
        )


class TransportError(GenesysError):
    """The network failed: connection refused or reset, timeout, dropped socket."""


class ApiError(GenesysError):
    """Genesys answered with an HTTP error status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        correlation_id: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}HTTP {status} {code or ''} {message}".replace("  ", " ").strip())


class RateLimited(ApiError):
    """429 Too Many Requests; `retry_after` is in seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited", **kwargs: str) -> None:
        self.retry_after = retry_after
        super().__init__(429, message, **kwargs)


class NotFound(ApiError):
    """404 Not Found."""


class ServerError(ApiError):
    """5xx from Genesys."""


class BadResponse(ApiError):
    """A success status with a body that does not match the documented model."""


class StoreError(MonitorError):
    """The database could not be opened, migrated, read or written."""


class ActionError(MonitorError):
    """A presence change that was refused before anything was sent (bad target, guard, cap)."""
