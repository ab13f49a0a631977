"""Storage: the SQLite store, its schema and the batching writer.

The names below are imported on first use, not with the package: the batch writer's process
(batch_write.py) imports modules of this package, and should not pay for aiosqlite and the rest
of the store, which it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.store.rows import ExportRow
    from monitor.store.schema import SCHEMA_VERSION
    from monitor.store.sqlite import Store, StoreStats
    from monitor.store.writer import Writer

__all__ = ["SCHEMA_VERSION", "ExportRow", "Store", "StoreStats", "Writer"]

_HOMES = {
    "SCHEMA_VERSION": "monitor.store.schema",
    "ExportRow": "monitor.store.rows",
    "Store": "monitor.store.sqlite",
    "StoreStats": "monitor.store.sqlite",
    "Writer": "monitor.store.writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
