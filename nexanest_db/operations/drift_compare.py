"""Comparing what is live with what the files say: the pure part of ``nndb drift`` (no server needed).

A catalog is a list of rows ``(kind, object, detail, parent)`` from ``sql/queries/drift-catalog.sql``:
``("column", "portfolio.holdings.note", "text", "portfolio.holdings")``. Two catalogs are equal when
every (kind, object) has the same detail on both sides; each difference becomes one ``DriftFinding``.
A table that exists on one side only is one finding: its columns, indexes, constraints, triggers and
grants (rows whose ``parent`` it is) are implied and not listed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Problem = Literal["unexpected", "missing", "differs", "changed"]
CatalogRow = tuple[str, str, str, str]

# Kinds whose rows are privileges: "grant SELECT on table auth.users to portfolio_app".
PRIVILEGE_KINDS = frozenset({"grant", "default privilege"})
RELATION_KINDS = frozenset({"table", "partitioned table", "view", "materialized view", "sequence", "foreign table"})
# The order findings are listed in: the containers first, then what is inside them, then privileges.
KIND_ORDER = (
    "database",
    "migration",
    "reference",
    "extension",
    "schema",
    *sorted(RELATION_KINDS),
    "column",
    "constraint",
    "index",
    "trigger",
    "function",
    "procedure",
    "aggregate",
    "window function",
    "enum type",
    "domain",
    "grant",
    "default privilege",
    "role",
    "ACL user",
)
SHORT_DETAIL = 160  # above this (both sides together), a "differs" line names the difference instead of quoting both


@dataclass(frozen=True, kw_only=True)
class DriftFinding:
    """One way the live tier differs from the files. ``line`` is what ``nndb drift`` prints."""

    subject: str  # a service (auth), an instance (postgres, timescale) or redis
    kind: str  # column, grant, role, ACL user, migration, ...
    name: str  # the object: portfolio.holdings.note, "SELECT on table auth.users to portfolio_app", auth_app, ...
    problem: Problem
    message: str  # what differs and what it suggests, never a secret
    live: str | None = None
    expected: str | None = None

    @property
    def line(self) -> str:
        return f"{self.subject}: {self.kind} {self.name}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "kind": self.kind,
            "object": self.name,
            "problem": self.problem,
            "message": self.message,
            "live": self.live,
            "expected": self.expected,
            "line": self.line,
        }


def sort_key(finding: DriftFinding) -> tuple[str, int, str]:
    rank = KIND_ORDER.index(finding.kind) if finding.kind in KIND_ORDER else len(KIND_ORDER)
    return (finding.subject, rank, finding.name)


def _index(rows: Iterable[CatalogRow]) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(kind, object) -> detail (details of duplicate keys joined, e.g. one privilege from two grantors), and -> parent."""
    details: dict[tuple[str, str], set[str]] = {}
    parents: dict[tuple[str, str], str] = {}
    for kind, name, detail, parent in rows:
        details.setdefault((kind, name), set()).add(detail or "")
        parents[(kind, name)] = parent or ""
    return {key: "; ".join(sorted(values)) for key, values in details.items()}, parents


def describe_difference(live: str, expected: str) -> str:
    """``live X; files Y`` when short, else which part differs (owner, definition)."""
    if len(live) + len(expected) <= SHORT_DETAIL:
        return f"differs from the schema files: live {live!r}, files {expected!r}"
    live_owner, _, live_rest = live.partition("; ")
    expected_owner, _, expected_rest = expected.partition("; ")
    parts = []
    if live_owner.startswith("owner ") and expected_owner.startswith("owner "):
        if live_owner != expected_owner:
            parts.append(f"{live_owner} (files: {expected_owner.removeprefix('owner ')})")
        if live_rest != expected_rest:
            parts.append("definition")
    else:
        parts.append("definition")
    return f"differs from the schema files: {' and '.join(parts)} (`nndb drift --json` shows both)"


def _privilege_message(problem: Problem, live: str, expected: str) -> str:
    if problem == "unexpected":
        return "not expected (granted by hand?)"
    if problem == "missing":
        return "missing (revoked by hand?)"
    return f"{live or 'without grant option'}, expected {expected or 'without grant option'}"


def compare_catalogs(subject: str, live_rows: Sequence[CatalogRow], expected_rows: Sequence[CatalogRow]) -> list[DriftFinding]:
    """Every difference between a live database's catalog and the reference built from the files."""
    live, live_parents = _index(live_rows)
    expected, expected_parents = _index(expected_rows)
    # Relations present on one side only: reported once, their contents implied.
    only_live = {name for kind, name in live.keys() - expected.keys() if kind in RELATION_KINDS}
    only_expected = {name for kind, name in expected.keys() - live.keys() if kind in RELATION_KINDS}
    findings = []
    for key in sorted(live.keys() | expected.keys()):
        kind, name = key
        privilege = kind in PRIVILEGE_KINDS
        if key not in expected:
            if kind not in RELATION_KINDS and live_parents.get(key) in only_live:
                continue
            message = _privilege_message("unexpected", "", "") if privilege else "not in the schema files (added by hand?)"
            findings.append(DriftFinding(subject=subject, kind=kind, name=name, problem="unexpected", message=message, live=live[key]))
        elif key not in live:
            if kind not in RELATION_KINDS and expected_parents.get(key) in only_expected:
                continue
            message = _privilege_message("missing", "", "") if privilege else "in the schema files but missing (dropped by hand?)"
            findings.append(DriftFinding(subject=subject, kind=kind, name=name, problem="missing", message=message, expected=expected[key]))
        elif live[key] != expected[key]:
            message = (
                _privilege_message("differs", live[key], expected[key]) if privilege else describe_difference(live[key], expected[key])
            )
            findings.append(
                DriftFinding(
                    subject=subject, kind=kind, name=name, problem="differs", message=message, live=live[key], expected=expected[key]
                )
            )
    return findings


def rename_database(rows: Iterable[CatalogRow], scratch: str, live: str) -> list[CatalogRow]:
    """The reference's rows with its scratch database's name replaced by the live one (only database grants name it)."""
    return [
        (kind, name.replace(f" on database {scratch} ", f" on database {live} ") if kind == "grant" else name, detail, parent)
        for kind, name, detail, parent in rows
    ]


@dataclass(frozen=True, kw_only=True)
class LiveRole:
    name: str
    superuser: bool
    inherit: bool
    create_role: bool
    create_db: bool
    login: bool
    replication: bool
    bypass_rls: bool
    connection_limit: int
    has_password: bool
    password_matches: bool | None  # None: no secret to compare with


@dataclass(frozen=True, kw_only=True)
class WantedRole:
    """A role the files create (sql/init/), with the attributes they set; ``secret``: its password's, if it logs in with one."""

    subject: str  # the service whose role it is, or the instance for the monitoring/replication roles
    name: str
    login: bool
    inherit: bool = True
    replication: bool = False
    connection_limit: int = -1
    secret: str | None = None
    member_of: tuple[str, ...] = ()

    def attributes(self) -> dict[str, bool | int]:
        return {
            "SUPERUSER": False,
            "CREATEROLE": False,
            "CREATEDB": False,
            "BYPASSRLS": False,
            "LOGIN": self.login,
            "INHERIT": self.inherit,
            "REPLICATION": self.replication,
            "CONNECTION LIMIT": self.connection_limit,
        }


def _attribute_text(name: str, value: bool | int) -> str:
    if isinstance(value, bool):
        return name if value else f"NO{name}"
    return f"{name} {value}"


def compare_role(instance: str, wanted: WantedRole, live: LiveRole | None) -> list[DriftFinding]:
    """A role's attributes and password against what sql/init/ sets (memberships: ``compare_memberships``)."""

    def finding(problem: Problem, message: str, live_text: str | None = None, expected_text: str | None = None) -> DriftFinding:
        return DriftFinding(
            subject=instance, kind="role", name=wanted.name, problem=problem, message=message, live=live_text, expected=expected_text
        )

    if live is None:
        return [finding("missing", f"missing (created by sql/init/ for {wanted.subject}; dropped by hand?)")]
    actual: dict[str, bool | int] = {
        "SUPERUSER": live.superuser,
        "CREATEROLE": live.create_role,
        "CREATEDB": live.create_db,
        "BYPASSRLS": live.bypass_rls,
        "LOGIN": live.login,
        "INHERIT": live.inherit,
        "REPLICATION": live.replication,
        "CONNECTION LIMIT": live.connection_limit,
    }
    findings = []
    for name, value in wanted.attributes().items():
        if actual[name] != value:
            have, want = _attribute_text(name, actual[name]), _attribute_text(name, value)
            findings.append(finding("differs", f"attribute {have}, the files set {want}", have, want))
    if wanted.secret is not None and live.password_matches is False:
        findings.append(finding("differs", f"password does not match secret {wanted.secret} (set by hand? `nndb hooks run` sets it again)"))
    if wanted.secret is None and live.has_password:
        findings.append(finding("differs", "has a password; the files set none (it logs in only during an nndb run, if at all)"))
    return findings


def compare_memberships(
    instance: str, managed: set[str], wanted: set[tuple[str, str]], live: Iterable[tuple[str, str, bool]]
) -> list[DriftFinding]:
    """Memberships touching a managed role: (member, granted) pairs against the wanted ones."""
    findings = []
    seen = set()
    for member, granted, admin in live:
        if member not in managed and granted not in managed:
            continue
        seen.add((member, granted))
        if (member, granted) not in wanted:
            findings.append(
                DriftFinding(
                    subject=instance,
                    kind="role",
                    name=member,
                    problem="unexpected",
                    message=f"member of {granted}: not expected (granted by hand?)",
                    live=f"member of {granted}",
                )
            )
        elif admin:
            findings.append(
                DriftFinding(
                    subject=instance,
                    kind="role",
                    name=member,
                    problem="differs",
                    message=f"member of {granted} WITH ADMIN OPTION: the files grant it without",
                    live="with admin option",
                    expected="without admin option",
                )
            )
    for member, granted in sorted(wanted - seen):
        findings.append(
            DriftFinding(
                subject=instance,
                kind="role",
                name=member,
                problem="missing",
                message=f"member of {granted}: missing (revoked by hand?)",
                expected=f"member of {granted}",
            )
        )
    return findings
