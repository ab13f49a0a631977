"""Storage: the SQLite store, its schema and the batching writer."""

from __future__ import annotations

from monitor.store.rows import ExportRow
from monitor.store.schema import SCHEMA_VERSION
from monitor.store.sqlite import Store, StoreStats
from monitor.store.writer import Writer

__all__ = ["SCHEMA_VERSION", "ExportRow", "Store", "StoreStats", "Writer"]
