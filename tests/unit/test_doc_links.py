"""Every relative link in the project's Markdown, and every alert's `runbook` annotation, points at a file that exists.

The on-call engineer follows these at 3 a.m.: a dangling link there is a defect. Checked: README.md,
docs/**/*.md, config/README.md and monitoring/README.md — inline links ``[text](target)`` outside
fenced code blocks (anchors are not checked, only the file), plus every ``docs/runbooks/<name>.md``
the same files or monitoring/rules mention as a path; and every rule's ``annotations.runbook``
(and ``runbook_url``, should one appear) in monitoring/rules/*.yml.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from tests.support.project import REPO_ROOT

DOCS = sorted(
    [
        REPO_ROOT / "README.md",
        REPO_ROOT / "config" / "README.md",
        REPO_ROOT / "monitoring" / "README.md",
        *(REPO_ROOT / "docs").rglob("*.md"),
    ]
)
RULE_FILES = sorted((REPO_ROOT / "monitoring" / "rules").glob("*.yml"))

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*(?:<([^>\n]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")
RUNBOOK_PATH = re.compile(r"docs/runbooks/[A-Za-z0-9_-]+\.md")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def relative_links(markdown: str) -> list[str]:
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    targets = []
    for bracketed, bare in LINK.findall(prose):
        target = bracketed or bare
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        targets.append(unquote(target.split("#", 1)[0]))
    return targets


def test_the_checked_files_exist() -> None:
    assert all(path.is_file() for path in DOCS) and len(DOCS) > 10, DOCS
    assert RULE_FILES, "no monitoring/rules/*.yml"


def test_link_parser_sees_links_and_skips_code() -> None:
    text = "See [a](a.md#x), [b](<b c.md>), [ext](https://x.y/z.md), [top](#here).\n`[no](code.md)`\n```\n[no](fenced.md)\n```\n"
    assert relative_links(text) == ["a.md", "b c.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_relative_links_point_at_existing_files(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [target for target in relative_links(text) if not (doc.parent / target).exists()]
    missing += [path for path in RUNBOOK_PATH.findall(text) if not (REPO_ROOT / path).is_file()]
    assert not missing, f"{doc.relative_to(REPO_ROOT)}: links to missing files: {sorted(set(missing))}"


def rule_runbooks(rule_file: Path) -> list[tuple[str, str]]:
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    found = []
    for group in document["groups"]:
        for rule in group["rules"]:
            annotations = rule.get("annotations", {})
            for key in ("runbook", "runbook_url"):
                if key in annotations:
                    found.append((rule["alert"], annotations[key]))
    return found


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_every_alert_names_an_existing_runbook(rule_file: Path) -> None:
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    alerts = [rule["alert"] for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    runbooks = rule_runbooks(rule_file)
    assert sorted({alert for alert, _ in runbooks}) == sorted(alerts), f"{rule_file.name}: every alert needs a runbook annotation"
    missing = [(alert, target) for alert, target in runbooks if not (REPO_ROOT / target).is_file()]
    missing += [
        ("(comment)", path) for path in RUNBOOK_PATH.findall(rule_file.read_text(encoding="utf-8")) if not (REPO_ROOT / path).is_file()
    ]
    assert not missing, f"{rule_file.name}: runbooks that do not exist: {missing}"


def test_the_readme_layout_names_every_module_of_the_package() -> None:
    """README's Layout section says which layer each module of nexanest_db/ is in: a new module gets its line there."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    layers = readme.split("`nexanest_db/`, layer by layer", 1)[1].split("```", 2)[1]  # the fenced list of layers
    named = set(re.findall(r"[A-Za-z_/]+\.py", layers))
    package = REPO_ROOT / "nexanest_db"
    modules = {path.relative_to(package).as_posix() for path in package.rglob("*.py") if path.name != "__init__.py"}
    assert sorted(modules - named) == [], "add the new module to README.md's Layout, in its layer"
    assert sorted(named - modules) == [], "README.md's Layout names a module that is gone"
