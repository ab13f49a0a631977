"""The Prometheus alert rules in prometheus/rules: valid, unit-tested with promtool, and in step
with the monitor's own default stuck-agent rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.core.rules import DEFAULT_RULES, Rule

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
TEST_FILES = sorted((ROOT / "tests" / "prometheus").glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary; the tests fail (not skip) without it, saying how to install it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: the alert-rule tests need it. scripts/system-packages installs "
            "Debian's prometheus package, which provides it."
        )
    return path


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool from the repository root, capturing its output."""
    return subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_there_are_rule_files_and_unit_tests() -> None:
    """The repository ships alert rules and promtool unit tests for them."""
    assert RULE_FILES
    assert TEST_FILES


def test_rule_files_are_valid(promtool: str) -> None:
    """`promtool check rules` accepts every rule file."""
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(promtool: str, test_file: Path) -> None:
    """`promtool test rules` passes: each alert fires for a stuck agent, after its threshold and
    `for`, and not for an agent passing through the state."""
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alerts() -> dict[str, str]:
    """The `rule` label -> the alert's text (expression, labels), for the agent alerts."""
    text = "\n".join(path.read_text() for path in RULE_FILES)
    found = {}
    for block in re.split(r"\n\s*- alert: ", text)[1:]:
        match = re.search(r"^\s*rule: (\w+)\s*$", block, re.MULTILINE)
        if match:
            found[match.group(1)] = block
    return found


def _values(block: str, label: str) -> frozenset[str] | None:
    match = re.search(rf'\b{label}=~?"([^"]+)"', block)
    return None if match is None else frozenset(match.group(1).split("|"))


@pytest.mark.parametrize("rule", DEFAULT_RULES, ids=lambda r: r.name)
def test_each_default_rule_has_a_matching_alert(rule: Rule) -> None:
    """Every default stuck-agent rule has an alert labelled with its name that looks for the same
    presences and routing statuses over the same threshold, so pages and genesys_agent_stuck
    agree."""
    block = _alerts().get(rule.name)
    assert block is not None, f"no alert with label rule: {rule.name}"
    assert _values(block, "presence") == rule.presences
    assert _values(block, "routing_status") == rule.routing
    thresholds = {int(n) for n in re.findall(r">\s*(\d+)\s*$", block, re.MULTILINE)}
    assert thresholds == {int(rule.threshold_s)}
