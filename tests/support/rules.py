"""The shipped Prometheus rules and their promtool tests, read as data (monitoring/rules, monitoring/tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.project import REPO_ROOT

MONITORING_DIR = REPO_ROOT / "monitoring"
RULES_DIR = MONITORING_DIR / "rules"
RULE_TESTS_DIR = MONITORING_DIR / "tests"


@dataclass(frozen=True)
class Rule:
    file: Path
    group: str
    kind: str  # "alert" or "record"
    name: str
    expr: str
    labels: dict[str, str]
    annotations: dict[str, str]
    for_: str | None


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS_DIR.glob("*.test.yml"))


def load_rules(files: list[Path] | None = None) -> list[Rule]:
    rules = []
    for path in files if files is not None else rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                kind = "alert" if "alert" in rule else "record"
                rules.append(
                    Rule(
                        file=path,
                        group=group["name"],
                        kind=kind,
                        name=rule[kind],
                        expr=rule["expr"],
                        labels=rule.get("labels", {}),
                        annotations=rule.get("annotations", {}),
                        for_=rule.get("for"),
                    )
                )
    return rules


def alerts() -> list[Rule]:
    return [rule for rule in load_rules() if rule.kind == "alert"]


# PromQL words that look like metric names but are not (keywords, aggregation modifiers).
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MODIFIER_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names an expression selects: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = _MODIFIER_LIST.sub(" ", text)  # by (...), on (...), group_left (...)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        token = match.group(0)
        if token.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def referenced_metrics() -> set[str]:
    """Every metric the shipped rules read, recorded series excluded (those are the rules' own)."""
    rules = load_rules()
    recorded = {rule.name for rule in rules if rule.kind == "record"}
    return {name for rule in rules for name in metric_names(rule.expr)} - recorded
