"""The core stays pure: no I/O libraries, no asyncio, no clock reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "monitor" / "core"
FORBIDDEN_MODULES = {
    "asyncio",
    "httpx",
    "h11",
    "websockets",
    "aiosqlite",
    "sqlite3",
    "prometheus_client",
    "socket",
    "time",
    "structlog",
    "logging",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time_ns", "monotonic", "open"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    """A core module imports no I/O or async library and reads no clock."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        for name in names:
            assert name not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name} calls .{node.func.attr}()"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"
