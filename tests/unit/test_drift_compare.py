"""The comparison half of `nndb drift` (nexanest_db/operations/drift_compare.py, redis_acl.py): rows in, one finding per difference."""

from __future__ import annotations

from nexanest_db.operations.drift_compare import (
    DriftFinding,
    LiveRole,
    WantedRole,
    compare_catalogs,
    compare_memberships,
    compare_role,
    describe_difference,
    rename_database,
    sort_key,
)
from nexanest_db.operations.redis_acl import WantedAclUser, default_user_differences, sha256_hex

HOLDINGS = [
    ("table", "portfolio.holdings", "owner portfolio_owner", ""),
    ("column", "portfolio.holdings.id", "bigint not null", "portfolio.holdings"),
    ("grant", "SELECT on table portfolio.holdings to portfolio_app", "", "portfolio.holdings"),
]


def lines(findings: list[DriftFinding]) -> list[str]:
    return [f.line for f in findings]


def test_equal_catalogs_have_no_findings() -> None:
    assert compare_catalogs("portfolio", HOLDINGS, list(reversed(HOLDINGS))) == []


def test_an_extra_a_missing_and_a_changed_row_are_one_finding_each() -> None:
    live = [*HOLDINGS[:2], ("column", "portfolio.holdings.note", "text", "portfolio.holdings")]
    expected = [("table", "portfolio.holdings", "owner portfolio_owner", ""), ("column", "portfolio.holdings.id", "integer not null", "")]
    expected.append(HOLDINGS[2])
    assert lines(compare_catalogs("portfolio", live, expected)) == [
        "portfolio: column portfolio.holdings.id: differs from the schema files: live 'bigint not null', files 'integer not null'",
        "portfolio: column portfolio.holdings.note: not in the schema files (added by hand?)",
        "portfolio: grant SELECT on table portfolio.holdings to portfolio_app: missing (revoked by hand?)",
    ]
    differs = compare_catalogs("portfolio", live, expected)[0]
    assert (differs.problem, differs.live, differs.expected) == ("differs", "bigint not null", "integer not null")


def test_a_table_on_one_side_only_is_one_finding_its_contents_implied() -> None:
    assert lines(compare_catalogs("portfolio", HOLDINGS, [])) == [
        "portfolio: table portfolio.holdings: not in the schema files (added by hand?)"
    ]
    assert lines(compare_catalogs("portfolio", [], HOLDINGS)) == [
        "portfolio: table portfolio.holdings: in the schema files but missing (dropped by hand?)"
    ]


def test_grant_option_is_a_difference_of_the_privilege() -> None:
    live = [("grant", "SELECT on table auth.users to auth_app", "with grant option", "auth.users")]
    expected = [("grant", "SELECT on table auth.users to auth_app", "", "auth.users")]
    assert lines(compare_catalogs("auth", live, expected)) == [
        "auth: grant SELECT on table auth.users to auth_app: with grant option, expected without grant option"
    ]


def test_long_definitions_name_what_differs_instead_of_quoting_both() -> None:
    body = (
        "CREATE OR REPLACE FUNCTION auth.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$"
    )
    assert describe_difference(f"owner auth_owner; {body}", f"owner auth_owner; {body} -- v2") == (
        "differs from the schema files: definition (`nndb drift --json` shows both)"
    )
    assert describe_difference(f"owner nexanest; {body}", f"owner auth_owner; {body}") == (
        "differs from the schema files: owner nexanest (files: auth_owner) (`nndb drift --json` shows both)"
    )


def test_the_scratch_database_name_becomes_the_live_one_in_database_grants_only() -> None:
    rows = [
        ("grant", "CONNECT on database nndb_drift_00ff to auth_app", "", ""),
        ("schema", "nndb_drift_00ff", "owner x", ""),
    ]
    assert rename_database(rows, "nndb_drift_00ff", "auth") == [
        ("grant", "CONNECT on database auth to auth_app", "", ""),
        ("schema", "nndb_drift_00ff", "owner x", ""),
    ]


def _live_role(**overrides: object) -> LiveRole:
    values: dict[str, object] = {
        "name": "auth_app",
        "superuser": False,
        "inherit": True,
        "create_role": False,
        "create_db": False,
        "login": True,
        "replication": False,
        "bypass_rls": False,
        "connection_limit": -1,
        "has_password": True,
        "password_matches": True,
    }
    values.update(overrides)
    return LiveRole(**values)  # type: ignore[arg-type]


def test_role_attributes_and_passwords_against_what_sql_init_sets() -> None:
    app = WantedRole(subject="auth", name="auth_app", login=True, secret="auth_app")
    assert compare_role("postgres", app, _live_role()) == []
    assert lines(compare_role("postgres", app, _live_role(superuser=True, connection_limit=5, password_matches=False))) == [
        "postgres: role auth_app: attribute SUPERUSER, the files set NOSUPERUSER",
        "postgres: role auth_app: attribute CONNECTION LIMIT 5, the files set CONNECTION LIMIT -1",
        "postgres: role auth_app: password does not match secret auth_app (set by hand? `nndb hooks run` sets it again)",
    ]
    migrator = WantedRole(subject="auth", name="auth_migrator", login=True, inherit=False)
    assert lines(compare_role("postgres", migrator, _live_role(name="auth_migrator", inherit=False, password_matches=None))) == [
        "postgres: role auth_migrator: has a password; the files set none (it logs in only during an nndb run, if at all)"
    ]
    assert lines(compare_role("postgres", migrator, None)) == [
        "postgres: role auth_migrator: missing (created by sql/init/ for auth; dropped by hand?)"
    ]


def test_memberships_touching_managed_roles() -> None:
    managed = {"auth_owner", "auth_migrator", "auth_app"}
    wanted = {("auth_migrator", "auth_owner")}
    live = [("auth_migrator", "auth_owner", False), ("portfolio_app", "auth_app", False), ("someone", "pg_monitor", False)]
    assert lines(compare_memberships("postgres", managed, wanted, live)) == [
        "postgres: role portfolio_app: member of auth_app: not expected (granted by hand?)"
    ]
    assert lines(compare_memberships("postgres", managed, wanted, [("auth_migrator", "auth_owner", True)])) == [
        "postgres: role auth_migrator: member of auth_owner WITH ADMIN OPTION: the files grant it without"
    ]
    assert lines(compare_memberships("postgres", managed, wanted, [])) == [
        "postgres: role auth_migrator: member of auth_owner: missing (revoked by hand?)"
    ]


def test_findings_sort_by_subject_then_containers_first() -> None:
    findings = [
        DriftFinding(subject="auth", kind="grant", name="b", problem="unexpected", message="m"),
        DriftFinding(subject="auth", kind="table", name="z", problem="unexpected", message="m"),
        DriftFinding(subject="auth", kind="migration", name="y", problem="changed", message="m"),
    ]
    assert [f.kind for f in sorted(findings, key=sort_key)] == ["migration", "table", "grant"]


def _service_user() -> WantedAclUser:
    return WantedAclUser(
        name="auth",
        password_sha256=sha256_hex("secret"),
        secret="redis_auth",
        keys="~auth:*",
        channels="&auth:*",
        commands=("+@all", "-@dangerous"),
        commands_ordered=True,
    )


def test_acl_user_rules_differences_never_show_a_password() -> None:
    user = _service_user()
    live = {
        "flags": ["on"],
        "passwords": [sha256_hex("secret")],
        "keys": "~auth:*",
        "channels": "&auth:*",
        "commands": "+@all -@dangerous",
        "selectors": [],
    }
    assert user.differences(live) == []
    assert user.rules == ["reset", "on", f"#{sha256_hex('secret')}", "~auth:*", "&auth:*", "+@all", "-@dangerous"]
    changed = {**live, "flags": ["off", "nopass"], "passwords": [], "commands": "-@dangerous +@all"}
    problems = user.differences(changed)
    assert problems == [
        "is off (wanted on)",
        "has nopass (any password logs in)",
        "password differs from secret redis_auth (0 password(s) set)",
        "commands '-@dangerous +@all', wanted '+@all -@dangerous'",
    ]
    assert not any(sha256_hex("secret") in problem for problem in problems)
    assert user.differences(None) == ["missing"]
    assert default_user_differences({"flags": ["on", "nopass"], "passwords": []}) == ["has no password (nopass)"]
