"""``sql/queries/plan-permissions.sql`` (what `nndb plan` says the permissions step would change) restates
the grants of ``sql/init/03-set-permissions.sql`` (what the step does). This test reads both files and
fails when one grants something the other does not: change them together."""

from __future__ import annotations

import re

from tests.support.project import REPO_ROOT

STEP_FILE = REPO_ROOT / "sql" / "init" / "03-set-permissions.sql"
PLAN_QUERY = REPO_ROOT / "sql" / "queries" / "plan-permissions.sql"

GRANTEES = {"{app_role}": "app", "{readonly_role}": "ro"}
TARGETS = {
    "DATABASE {database}": "database",
    "SCHEMA {schema}": "schema",
    "ALL TABLES IN SCHEMA {schema}": "table",
    "ALL SEQUENCES IN SCHEMA {schema}": "sequence",
    "ALL FUNCTIONS IN SCHEMA {schema}": "function",
}
DEFAULT_TARGETS = {"TABLES": "default r", "SEQUENCES": "default S", "FUNCTIONS": "default f"}

GRANT = re.compile(r"^GRANT (?P<privileges>[A-Z, ]+) ON (?P<target>.+?) TO (?P<grantee>\{\w+\});$")
DEFAULT_GRANT = re.compile(
    r"^ALTER DEFAULT PRIVILEGES FOR ROLE \{owner_role\} IN SCHEMA \{schema\} "
    r"GRANT (?P<privileges>[A-Z, ]+) ON (?P<target>TABLES|SEQUENCES|FUNCTIONS) TO (?P<grantee>\{\w+\});$"
)
WANTED = re.compile(r"SELECT '(?P<what>[a-zA-Z ]+)', (?P<grantee>app|ro), ARRAY\[(?P<privileges>[^\]]+)\] FROM roles")

Grant = tuple[str, str, frozenset[str]]


def step_file_grants() -> set[Grant]:
    grants: set[Grant] = set()
    for line in STEP_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if match := DEFAULT_GRANT.match(line):
            what = DEFAULT_TARGETS[match["target"]]
        elif match := GRANT.match(line):
            what = TARGETS[match["target"]]
        else:
            assert not line.startswith(("GRANT", "ALTER DEFAULT")), f"{STEP_FILE.name}: a grant this test cannot read: {line}"
            continue
        privileges = frozenset(p.strip() for p in match["privileges"].split(","))
        grants.add((what, GRANTEES[match["grantee"]], privileges))
    return grants


def plan_query_grants() -> set[Grant]:
    return {
        (m["what"], m["grantee"], frozenset(p.strip().strip("'") for p in m["privileges"].split(",")))
        for m in WANTED.finditer(PLAN_QUERY.read_text(encoding="utf-8"))
    }


def test_the_plan_query_expects_exactly_the_grants_the_permissions_step_makes() -> None:
    made, expected = step_file_grants(), plan_query_grants()
    assert len(made) >= 10 and len(expected) >= 10  # both files were read, not an empty match
    assert made - expected == set(), f"granted by {STEP_FILE.name} but not expected by {PLAN_QUERY.name}"
    assert expected - made == set(), f"expected by {PLAN_QUERY.name} but not granted by {STEP_FILE.name}"


def test_the_revokes_the_plan_query_looks_for_are_the_step_files() -> None:
    revokes = {line.strip() for line in STEP_FILE.read_text(encoding="utf-8").splitlines() if line.startswith("REVOKE")}
    assert revokes == {
        "REVOKE ALL ON DATABASE {database} FROM PUBLIC;",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        "REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;",
    }, "the plan query checks PUBLIC on the database and both schemas, and CREATE on public; change it with the step file"
    query = PLAN_QUERY.read_text(encoding="utf-8")
    assert "o.what IN ('database', 'schema') AND EXISTS (SELECT FROM aclexplode(o.acl) a WHERE a.grantee = 0)" in query
    assert "o.what = 'public' AND EXISTS (SELECT FROM aclexplode(o.acl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE')" in query
