"""Foreign libraries are used at one edge each, where their exceptions are translated."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"

# library -> the only modules (relative to monitor/) allowed to import it
ALLOWED = {
    "httpx": {"genesys/api.py"},
    "h11": {"httpserver.py"},
    "aiosqlite": {"store.py", "store/"},
    "prometheus_client": {"metrics.py", "metric_types.py", "web.py"},
    # The daemon's websocket client lives in one module; the simulator is the server side.
    "websockets": {"genesys/socket.py", "sim/"},
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_library_is_imported_only_at_its_edge(library: str) -> None:
    """Only the modules that own a library's boundary import it."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        allowed = any(
            relative == place or (place.endswith("/") and relative.startswith(place))
            for place in ALLOWED[library]
        )
        if library in imports(path) and not allowed:
            offenders.append(relative)
    assert offenders == []
