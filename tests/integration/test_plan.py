"""`nndb plan <stack>` on real changes: a git copy of the project (base = its first commit, the change in
the working tree), synthesized at both (the structural-diff path: no providers needed), against real
PostgreSQL/Redis servers brought to the deployed state by the real hooks.

A new migration shows with its SQL; a postgresql.conf setting replaces the postgres container; turning
PITR off removes the WAL-archive volume (data loss); a grant revoked, an ACL rule changed, a role
altered and a password set by hand show as the statements the hooks would run (verifiers and hashes
as placeholders); a fresh tier plans every role, database and migration; unreachable servers are
said in one line; usage errors are one line and exit 2, a failing base synth exits 13; nothing is
written to the databases, nothing left in the temporary directory, no secret value printed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nexanest_db.errors import PlanFailed, UsageError
from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import NNDB, run_in_process
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS, free_port
from tests.support.project import copy_project

pytestmark = pytest.mark.integration
STACK = "local-db"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=nndb tests", "-c", "user.email=tests@nexanest.invalid", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project (what synth reads) committed once in a fresh git repository: the base of every change."""
    repo = copy_project(tmp_path_factory.mktemp("plan-repo") / "project")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


@pytest.fixture
def repo(repo_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(repo_template, copy, symlinks=True)
    return copy


@pytest.fixture
def deployed(db_stack: DbStack) -> DbStack:
    assert run_in_process(db_stack).change_count > 0
    return db_stack


def plan(repo: Path, db_stack: DbStack, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(repo),
        **CHILD_PYTHONPATH,
        **(environ if environ is not None else db_stack.environ),
        "NNDB_PROJECT_DIR": str(repo),
        "TMPDIR": str(scratch(repo)),
    }
    return subprocess.run([NNDB, "plan", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=180, check=False)


def scratch(repo: Path) -> Path:
    """The temporary directory of every `nndb plan` run of a test: it must be empty again afterwards."""
    directory = repo.parent / "scratch"
    directory.mkdir(exist_ok=True)
    return directory


def plan_json(repo: Path, db_stack: DbStack, *args: str) -> dict:
    result = plan(repo, db_stack, STACK, "--json", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(scratch(repo).iterdir()) == []  # the base copy and both synth outdirs are gone
    return json_result(result.stdout, "plan")


def resource(document: dict, address: str) -> dict:
    (found,) = [r for r in document["infrastructure"]["resources"] if r["address"] == address]
    return found


def assert_no_secret(text: str) -> None:
    for value in STACK_PASSWORDS.values():
        assert value not in text
        assert hashlib.sha256(value.encode()).hexdigest() not in text


def test_a_new_migration_shows_with_its_sql_and_nothing_else_is_due(repo: Path, deployed: DbStack) -> None:
    migration = repo / "sql" / "migrations" / "auth" / "V004__add_plan_probe.sql"
    migration.write_text("-- probe\nALTER TABLE auth.users ADD COLUMN plan_probe text;\n", encoding="utf-8")

    document = plan_json(repo, deployed, "--base", "main")
    assert document["schema"] == 1 and document["stack"] == STACK and document["error"] is None
    assert document["base"]["ref"] == "main" and len(document["base"]["commit"]) == 40
    assert document["infrastructure"]["source"] == "structural-diff"
    hooks = resource(document, "terraform_data.post_apply")
    assert hooks["action"] == "replace"
    assert {"path": "triggers_replace.content_sql", "forces_replacement": True, "via": None} in hooks["attributes"]
    assert [r["address"] for r in document["infrastructure"]["resources"]] == ["terraform_data.post_apply"]  # no container touched
    databases = document["databases"]
    assert databases["reachable"] is True and databases["note"] is None
    by_service = {m["service"]: m for m in databases["migrations"]}
    assert [m["label"] for m in by_service["auth"]["pending"]] == ["V004"]
    assert "ADD COLUMN plan_probe text" in by_service["auth"]["pending"][0]["sql"]
    assert by_service["portfolio"]["pending"] == [] and by_service["analytics"]["pending"] == []
    assert all(m["checked"] for m in databases["migrations"])
    # The hooks just ran: no role, grant or ACL statement is due (no false positives).
    assert databases["statements"] == [] and databases["privileges"] == {} and databases["problems"] == []
    assert document["verdict"] == {"level": "hooks", "line": "re-runs the post-apply hooks; applies 1 pending migration"}
    assert all(s["present"] for s in document["secrets"])

    markdown = plan(repo, deployed, STACK, "--base", "main")
    assert markdown.returncode == 0, markdown.stderr
    assert "**Verdict:** re-runs the post-apply hooks; applies 1 pending migration" in markdown.stdout
    assert "```sql\n-- probe\nALTER TABLE auth.users ADD COLUMN plan_probe text;\n```" in markdown.stdout
    assert_no_secret(markdown.stdout)
    written = plan(repo, deployed, STACK, "--base", "main", "--output", str(repo.parent / "plan.md"))
    assert written.returncode == 0 and written.stdout == ""
    assert written.stderr.splitlines() == [
        f"plan {STACK}: re-runs the post-apply hooks; applies 1 pending migration (report in {repo.parent / 'plan.md'})"
    ]
    assert (repo.parent / "plan.md").read_text(encoding="utf-8").startswith("## nndb plan: local-db\n\n**Verdict:** re-runs")

    # Read-only: the migration is still pending, nothing was recorded.
    with deployed.postgres.connect("auth") as conn:
        assert conn.execute("SELECT count(*) FROM nndb.schema_migrations WHERE version = 4").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE column_name = 'plan_probe'").fetchone() == (0,)


def test_a_postgresql_conf_setting_replaces_the_postgres_container(repo: Path, deployed: DbStack) -> None:
    config = repo / "config" / "local.toml"
    config.write_text(config.read_text().replace('shared_buffers = "128MB"', 'shared_buffers = "256MB"', 1), encoding="utf-8")

    document = plan_json(repo, deployed, "--base", "main")
    postgres = resource(document, "docker_container.postgres")
    assert postgres["action"] == "replace"
    paths = {a["path"]: a for a in postgres["attributes"]}
    assert paths['upload["/etc/postgresql/postgresql.conf"].content']["forces_replacement"] is True
    assert not any(r["address"] == "docker_container.timescale" for r in document["infrastructure"]["resources"])
    assert document["verdict"]["level"] == "downtime"
    assert document["verdict"]["line"].startswith("replaces the postgres container: brief downtime; re-runs the post-apply hooks")

    markdown = plan(repo, deployed, STACK, "--base", "main").stdout
    assert (
        '| **replace** | `docker_container.postgres` | `upload["/etc/postgresql/postgresql.conf"].content` (forces replacement)' in markdown
    )


def test_turning_pitr_off_destroys_the_wal_archive_volume(repo: Path, db_stack: DbStack) -> None:
    config = repo / "config" / "local.toml"
    config.write_text(config.read_text().replace("pitr = false", "pitr = true", 1), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "pitr on")  # the base: PITR on, a WAL-archive volume
    config.write_text(config.read_text().replace("pitr = true", "pitr = false", 1), encoding="utf-8")

    document = plan_json(repo, db_stack, "--base", "HEAD")
    deleted = [r["address"] for r in document["infrastructure"]["resources"] if r["action"] == "delete"]
    assert deleted == ["docker_volume.postgres_wal_archive", "docker_volume.timescale_wal_archive"]
    assert resource(document, "docker_container.postgres")["action"] == "replace"  # its archive mount is gone
    assert document["verdict"]["level"] == "data-loss"
    assert document["verdict"]["line"].startswith(
        "destroys 2 volumes (postgres_wal_archive, timescale_wal_archive): data loss; replaces the "
    )
    markdown = plan(repo, db_stack, STACK, "--base", "HEAD").stdout
    assert "| **destroy** | `docker_volume.postgres_wal_archive` | - |" in markdown


def test_a_grant_revoked_and_an_acl_rule_changed_by_hand_show_as_the_statements_the_hooks_would_run(repo: Path, deployed: DbStack) -> None:
    with deployed.postgres.connect("auth") as conn:
        conn.execute("REVOKE DELETE ON ALL TABLES IN SCHEMA auth FROM auth_app")
        before = conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'auth'::regnamespace ORDER BY 1").fetchall()
    client = deployed.redis.client(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    client.execute_command("ACL", "SETUSER", "portfolio", "~*")

    document = plan_json(repo, deployed)
    assert document["infrastructure"]["source"] == "not-computed"  # no --base, not initialized here
    databases = document["databases"]
    assert "relation users" in databases["privileges"]["auth"]
    assert set(databases["privileges"]) == {"auth"}
    grants = [s for s in databases["statements"] if s["kind"] == "grant"]
    assert {s["subject"] for s in grants} == {"postgres/auth"}
    assert any('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "auth" TO "auth_app"' in s["statement"] for s in grants)
    acl = [s for s in databases["statements"] if s["kind"] == "redis-acl"]
    assert [s["step"] for s in acl] == ["reset Redis user portfolio to keys portfolio:*", "ACL file saved"]
    assert (
        acl[0]["statement"]
        == "ACL SETUSER portfolio reset on #<sha256 of secret redis_portfolio> ~portfolio:* &portfolio:* +@all -@dangerous"
    )
    assert not [s for s in databases["statements"] if s["kind"] == "role"]
    assert document["verdict"]["level"] == "unknown"  # the infrastructure was not computed: no level claims more
    objects = len(databases["privileges"]["auth"])
    assert document["verdict"]["line"] == (
        f"infrastructure not computed (see Infrastructure); changes privileges on {objects} objects (auth); changes 1 Redis ACL user"
    )
    assert_no_secret(json.dumps(document))

    # Read-only: the revoked grant and the changed rule are still as they were by hand.
    with deployed.postgres.connect("auth") as conn:
        after = conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'auth'::regnamespace ORDER BY 1").fetchall()
    assert after == before
    assert "~*" in str(client.execute_command("ACL", "GETUSER", "portfolio"))


def test_a_fresh_tier_plans_every_role_database_and_migration(repo: Path, db_stack: DbStack) -> None:
    document = plan_json(repo, db_stack)
    databases = document["databases"]
    steps = {(s["subject"], s["step"]) for s in databases["statements"] if s["kind"] == "role"}
    assert {
        ("postgres/auth", "created role auth_owner (NOLOGIN, owns the service's objects)"),
        ("postgres/auth", "created database auth (owner auth_owner)"),
    } <= steps
    assert ("timescale/analytics", "created read-only login role analytics_readonly") in steps
    by_service = {m["service"]: m for m in databases["migrations"]}
    assert by_service["auth"]["note"] == "no ledger yet: the baseline and every migration run"
    assert [m["label"] for m in by_service["auth"]["pending"]][:2] == ["baseline", "V001"]
    assert {s["subject"] for s in databases["statements"] if s["kind"] == "redis-acl"} == {"redis"}
    with db_stack.postgres.connect("postgres") as conn:  # read-only: still nothing there
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'auth%'").fetchone() == (0,)


def test_a_role_changed_by_hand_shows_its_repair_and_a_rotation_hides_the_verifier(repo: Path, deployed: DbStack) -> None:
    with deployed.postgres.connect("postgres") as conn:
        conn.execute("ALTER ROLE auth_app CREATEDB")
        conn.execute("ALTER ROLE portfolio_app PASSWORD 'set-by-hand-Secret-9'")
    document = plan_json(repo, deployed)
    roles = {s["step"]: s["statement"] for s in document["databases"]["statements"] if s["kind"] == "role"}
    assert roles["reset role auth_app to LOGIN without elevated attributes"] == (
        'ALTER ROLE "auth_app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;'
    )
    assert (
        roles["password rotated for portfolio_app"] == """ALTER ROLE "portfolio_app" PASSWORD '<SCRAM verifier of the current secret>';"""
    )
    assert set(roles) == {"reset role auth_app to LOGIN without elevated attributes", "password rotated for portfolio_app"}
    text = json.dumps(document)
    assert_no_secret(text)
    assert "SCRAM-SHA-256$" not in text
    with deployed.postgres.connect("postgres") as conn:
        assert conn.execute("SELECT rolcreatedb FROM pg_roles WHERE rolname = 'auth_app'").fetchone() == (True,)


def test_secrets_are_present_or_missing_never_a_value_and_a_missing_source_does_not_stop_the_plan(repo: Path, db_stack: DbStack) -> None:
    environ = {**db_stack.environ, "AUTH_DB_PASSWORD_FILE": str(repo / "no-such-secret")}
    environ.pop("AUTH_DB_PASSWORD")
    result = plan(repo, db_stack, STACK, "--json", environ=environ)
    assert result.returncode == 0, result.stderr
    document = json_result(result.stdout, "plan")
    (missing,) = [s for s in document["secrets"] if not s["present"]]
    assert missing["name"] == "auth_app" and "AUTH_DB_PASSWORD_FILE" in missing["problem"]
    assert "1 secret missing: the deploy would stop (auth_app)" in document["verdict"]["line"]
    assert any("auth" in p and "not computed" in p for p in document["databases"]["problems"])
    assert_no_secret(result.stdout)

    # staging reads Vault; without VAULT_ADDR every secret is "not checked" and the plan still comes out
    staging = {k: v for k, v in db_stack.environ.items() if not k.startswith("VAULT")}
    result = plan(repo, db_stack, "staging-db", "--connect-timeout", "1", environ=staging)
    assert result.returncode == 0, result.stderr
    assert "secrets not checked (their source is not available here)" in result.stdout
    assert "Not checked: staging: VAULT_ADDR is not set" in result.stdout


def test_unreachable_databases_are_said_in_one_line(repo: Path, db_stack: DbStack) -> None:
    closed = str(free_port())
    environ = {**db_stack.environ, "POSTGRES_PORT": closed, "TIMESCALE_PORT": str(free_port()), "REDIS_PORT": str(free_port())}
    result = plan(repo, db_stack, STACK, "--base", "main", "--connect-timeout", "1", environ=environ)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "live databases not reachable" in line]
    assert len(notes) == 1
    assert notes[0].startswith(
        f"> live databases not reachable (postgres, timescale, redis: postgres at 127.0.0.1:{closed}: connection refused"
    )
    assert "Not computed for postgres, timescale, redis: not reachable." in result.stdout
    assert "**Verdict:** live databases not checked" in result.stdout  # nothing changed at the base, nothing checked live


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope-db",), "unknown stack 'nope-db'"),
        ((STACK, "--base", "no-such-ref"), "--base no-such-ref: no such commit in "),
        ((STACK, "--base", "main", "--plan-file", "x.tfplan"), "--base and --plan-file are two sources"),
        ((STACK, "--plan-file", "missing.tfplan"), "--plan-file missing.tfplan: no such file"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(repo: Path, db_stack: DbStack, args: tuple[str, ...], message: str) -> None:
    result = plan(repo, db_stack, *args)
    assert result.returncode == UsageError.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"nndb: error: {message}")

    as_json = plan(repo, db_stack, *args, "--json")
    assert as_json.returncode == 2
    document = json.loads(as_json.stdout)
    assert document["error"]["exit_code"] == 2 and document["error"]["message"].startswith(message)
    assert list(scratch(repo).iterdir()) == []


def test_a_base_whose_synth_fails_exits_13_and_leaves_nothing_behind(repo: Path, db_stack: DbStack) -> None:
    (repo / "config" / "local.toml").write_text("[docker\n", encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "broken config")
    _git(repo, "checkout", "-q", "HEAD~1", "--", "config/local.toml")  # the working tree is fine again
    result = plan(repo, db_stack, STACK, "--base", "HEAD", "--json")
    assert result.returncode == PlanFailed.exit_code == 13, result.stderr
    document = json.loads(result.stdout)
    assert document["error"]["message"].startswith("synth of base failed")
    assert result.stderr.splitlines() == [f"nndb: error: {document['error']['message']}"]
    assert list(scratch(repo).iterdir()) == []
