"""The shipped Prometheus rules (monitoring/rules) and their promtool unit tests (monitoring/tests).

promtool (Debian's ``prometheus`` package) checks the rule files and runs the unit tests; the tests
here also hold the suite to its promise: every alert has a case where it fires and a case where it
stays quiet, and a rule broken on purpose (never firing, always firing) makes promtool fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.support.rules import (
    MONITORING_DIR,
    REPO_ROOT,
    RULE_TESTS_DIR,
    Rule,
    alerts,
    load_rules,
    metric_names,
    referenced_metrics,
    rule_files,
    rule_test_files,
)

SEVERITIES = {"critical", "warning"}
MONITORING_DOC = REPO_ROOT / "docs" / "monitoring.md"
CONTRACT_DOC = MONITORING_DIR / "README.md"


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool: not found; install Debian's prometheus (apt-get install -y prometheus)", pytrace=False)
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def load_tests(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(("command", "files"), [("check", rule_files), ("test", rule_test_files)], ids=["check rules", "test rules"])
def test_promtool_passes(command: str, files: Callable[[], list[Path]]) -> None:
    paths = files()
    assert paths, f"nothing for promtool {command} rules in monitoring/"
    result = run_promtool(command, "rules", *map(str, paths))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(paths), result.stdout


def test_every_rule_file_has_a_test_file_and_no_test_loads_anything_else() -> None:
    tested = set()
    for path in rule_test_files():
        for name in load_tests(path)["rule_files"]:
            target = (path.parent / name).resolve()
            assert target.parent == (MONITORING_DIR / "rules").resolve(), f"{path.name}: loads {name}, not a shipped rule file"
            tested.add(target)
    assert tested == {path.resolve() for path in rule_files()}


def _alert_cases() -> dict[str, dict[str, int]]:
    """alertname -> number of firing and quiet evaluations across all promtool tests."""
    cases: dict[str, dict[str, int]] = {}
    for path in rule_test_files():
        for test in load_tests(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], {"fires": 0, "quiet": 0})
                counts["fires" if case.get("exp_alerts") else "quiet"] += 1
    return cases


def test_every_alert_fires_on_a_synthetic_failure_and_stays_quiet_on_a_healthy_series() -> None:
    cases = _alert_cases()
    names = {rule.name for rule in alerts()}
    assert set(cases) <= names, f"tests for alerts that do not exist: {sorted(set(cases) - names)}"
    missing = {name: cases.get(name, {"fires": 0, "quiet": 0}) for name in names}
    missing = {name: counts for name, counts in missing.items() if not (counts["fires"] and counts["quiet"])}
    assert not missing, f"alerts without both a firing and a quiet case: {missing}"


def test_every_recording_rule_is_checked_or_feeds_a_tested_alert() -> None:
    expr_tests = {
        case["expr"] for path in rule_test_files() for test in load_tests(path)["tests"] for case in test.get("promql_expr_test", [])
    }
    for rule in load_rules():
        if rule.kind == "record":
            assert rule.name in expr_tests, f"recording rule {rule.name} has no promql_expr_test"


def test_alert_names_and_record_names_are_unique() -> None:
    names = [rule.name for rule in load_rules()]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule.name)
def test_alert_carries_severity_summary_and_a_planned_runbook(rule: Rule) -> None:
    assert rule.name.startswith("Nndb")
    assert rule.labels.get("severity") in SEVERITIES, f"{rule.name}: severity must be one of {sorted(SEVERITIES)}"
    assert set(rule.annotations) == {"summary", "runbook"}, rule.annotations
    assert re.fullmatch(r"docs/runbooks/[a-z0-9-]+\.md", rule.annotations["runbook"]), rule.annotations["runbook"]
    doc = MONITORING_DOC.read_text(encoding="utf-8")
    assert f"### {rule.name}" in doc, f"docs/monitoring.md does not explain {rule.name}"
    assert rule.annotations["runbook"] in doc, f"docs/monitoring.md does not list {rule.annotations['runbook']} as a planned runbook"


def test_every_metric_the_rules_read_is_named_in_the_contract() -> None:
    """monitoring/README.md lists what the rules depend on, so a new exporter version or writer can be checked against it."""
    contract = CONTRACT_DOC.read_text(encoding="utf-8")
    unnamed = sorted(name for name in referenced_metrics() if f"`{name}`" not in contract)
    assert not unnamed, f"monitoring/README.md does not name: {unnamed}"


def test_metric_name_extraction_skips_functions_labels_and_keywords() -> None:
    expr = 'sum by (stack, instance) (rate(x_total{a="b or c"}[5m])) / on (stack) group_left (d) max(y) > bool 0.8 unless z'
    assert metric_names(expr) == {"x_total", "y", "z"}


# --- the promtool tests catch broken rules -------------------------------------------------------

NEVER_FIRES = "vector(0) > 1"
ALWAYS_FIRES = "vector(1)"


def _mutated_run(rule: Rule, expr: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """promtool test rules on a copy of monitoring/ where ``rule``'s expression is replaced by ``expr``."""
    copy = workdir / "monitoring"
    shutil.copytree(MONITORING_DIR / "rules", copy / "rules")
    shutil.copytree(RULE_TESTS_DIR, copy / "tests")
    target = copy / "rules" / rule.file.name
    document = yaml.safe_load(target.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for entry in group["rules"]:
            if entry.get("alert") == rule.name:
                entry["expr"] = expr
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    tests = [str(path) for path in (copy / "tests").glob("*.test.yml") if f"../rules/{rule.file.name}" in path.read_text(encoding="utf-8")]
    return run_promtool("test", "rules", *tests)


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule.name)
def test_promtool_tests_fail_when_the_alert_never_fires_or_always_fires(rule: Rule, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        never, always = pool.map(
            lambda pair: _mutated_run(rule, pair[0], tmp_path / pair[1]), [(NEVER_FIRES, "never"), (ALWAYS_FIRES, "always")]
        )
    assert never.returncode != 0 and f"alertname: {rule.name}" in never.stdout + never.stderr, "a rule that never fires passed its tests"
    assert always.returncode != 0 and f"alertname: {rule.name}" in always.stdout + always.stderr, (
        "a rule that always fires passed its tests"
    )
