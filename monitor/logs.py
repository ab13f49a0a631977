"""structlog set-up: JSON lines when stderr is not a terminal, readable console lines when it is.

Secrets never reach a log line: any key that looks like a credential is replaced by `***`, and the
stdlib loggers of the libraries (websockets, httpx, ...) go through the same processors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

Format = Literal["auto", "json", "console"]

_SECRET_MARKERS = ("secret", "password", "token", "authorization", "credential", "api_key")


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of every key that names a secret."""
    for key in list(event):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS) and not lowered.endswith(
            ("_expires", "_expiry", "_count", "_id")
        ):
            event[key] = "***"
    return event


def configure(level: str = "info", fmt: Format = "auto", stream: Any = None) -> None:
    """Route structlog and stdlib logging to `stream` (stderr by default) in the chosen format."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any
    if use_json:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The libraries' own debug chatter (every frame, every request) is not ours to show at info.
    for noisy in ("websockets", "httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
