"""The real thing: `cdktf deploy|diff|destroy local-db` with the upstream providers, as the README gives them.

One scenario, in order, on a copy of the project with unique names and published ports, pointed at
the stand-in images (tests/support/deploy.py):

1. deploy: the databases answer as soon as it returns (no 30 s health wait), the hooks ran inside
   it, roles/ACLs/backups are in place, the exporters scrape them (pg_up 1, redis_up 1); no file others can read holds a secret; Docker's own health
   check (the ADR's 30 s interval) reports healthy afterwards.
2. `cdktf diff` and a second deploy: "No changes."; same containers; the hooks have nothing to do. A state
   with cdktf's hashed addresses (deployed before stable addresses) is moved, nothing replaced.
3. a postgresql.conf change replaces only the postgres container; data stays.
4. a password rotation through a deploy (a login role and the postgres superuser, whose data
   volume still has the old password): old refused, new works, the data row survives.
5. a migration that fails inside a deploy: one line naming file and line; containers keep running;
   the ledger holds only what committed; the deploy after the fix completes.
6. destroy: the guard takes verified backups first, then nothing of the stack is left.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator

import psycopg
import pytest
import redis

from tests.fixtures.toolchain import Toolchain
from tests.support.cli_json import json_result
from tests.support.deploy import INSTANCES, DeployedCopy

pytestmark = [pytest.mark.e2e, pytest.mark.needs_providers]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, toolchain: Toolchain) -> Iterator[DeployedCopy]:
    deployed = DeployedCopy.create(tmp_path_factory.mktemp("e2e") / "project", toolchain, label="local-db e2e")
    try:
        yield deployed
    finally:
        deployed.teardown()


def applied(deployed: DeployedCopy, service: str, instance: str = "postgres") -> list[int]:
    user, secret = ("nexanest", deployed.passwords["POSTGRES_PASSWORD" if instance == "postgres" else "TIMESCALE_PASSWORD"])
    with deployed.connect(instance, user, secret, service) as conn:
        return [r[0] for r in conn.execute("select version from nndb.schema_migrations where service = %s order by 1", (service,))]


def test_deploy_local_db_end_to_end(local: DeployedCopy) -> None:
    pw = local.passwords

    # 1. first deploy: it returns once the databases answer, with the hooks done by the same command
    output = local.cdktf("deploy", "deploy").output
    (ready,) = [line for line in output.splitlines() if "ready local-db:" in line]
    assert all(f"127.0.0.1:{local.ports[i]}" in ready for i in INSTANCES), ready
    assert re.search(r"hooks: [1-9]\d* changes? in ", output), "the post-apply hooks did not report from inside cdktf deploy"
    assert all(local.running(i) for i in INSTANCES)
    first_ids = local.container_ids()
    with local.connect("postgres", "auth_app", pw["AUTH_DB_PASSWORD"], "auth") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("create schema intruder")
    assert applied(local, "auth") == [0, 1, 2, 3]
    with pytest.raises(psycopg.OperationalError):
        local.connect("postgres", "portfolio_app", pw["AUTH_DB_PASSWORD"], "portfolio")
    with local.connect("timescale", "analytics_app", pw["ANALYTICS_DB_PASSWORD"], "analytics") as conn:
        assert conn.execute("select count(*) from information_schema.tables where table_schema = 'analytics'").fetchone()[0] >= 1
    cache = redis.Redis(host="127.0.0.1", port=local.ports["redis"], username="auth", password=pw["AUTH_REDIS_PASSWORD"])
    cache.set("auth:e2e", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.set("portfolio:e2e", "1")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=local.ports["redis"]).ping()
    catalog = json_result(local.nndb("backup", "list", "local-db", "--json").stdout, "backup-list")
    assert sorted(catalog["databases"]) == ["postgres/auth", "postgres/portfolio", "timescale/analytics"]
    assert catalog["backups"] and all(record["verified"] for record in catalog["backups"])
    with local.connect("postgres", "auth_app", pw["AUTH_DB_PASSWORD"], "auth") as conn:
        conn.execute("insert into auth.users (email, password_hash) values ('e2e@nexanest.test', 'x')")
    # the exporters deployed beside the databases log in as the monitoring identities the hooks created
    local.scrape("postgres-exporter", "pg_up 1")
    local.scrape("timescale-exporter", "pg_up 1")
    local.scrape("redis-exporter", "redis_up 1")

    # where secret values live: local state, only its owner can read it
    for state in ("terraform.local-db.tfstate", "terraform.local-db.tfstate.backup"):
        assert stat.S_IMODE((local.root / state).stat().st_mode) == 0o600, state
    assert pw["POSTGRES_PASSWORD"].encode() in (local.root / "terraform.local-db.tfstate").read_bytes(), "state holds secrets"
    assert local.leaks() == []

    # 2. diff and deploy again: nothing to change, the hooks have nothing to do
    assert "No changes." in local.cdktf("diff (no-op)", "diff").output
    # ... and the plan `cdktf diff` saved (secret values in clear) is in a directory only its owner enters
    stack_dir = local.root / "cdktf.out" / "stacks" / "local-db"
    assert stat.S_IMODE(stack_dir.stat().st_mode) == 0o700 and (stack_dir / "plan").is_file()
    assert local.leaks() == []
    assert "No changes." in local.cdktf("redeploy (no-op)", "deploy").output
    assert local.container_ids() == first_ids
    assert "hooks: 0 changes (up to date)" in local.nndb("hooks", "run", "local-db").stdout
    # 2b. a stack deployed with cdktf's hashed addresses (every release before stable addresses): put its
    #     state back in that shape; the `moved` blocks rename everything in state, nothing is replaced
    stack_json = json.loads((stack_dir / "cdk.tf.json").read_text())
    for move in stack_json["moved"]:
        local.terraform("state", "mv", move["to"], move["from"])
    assert "docker_container.postgres_container_A7145DB3" in local.terraform("state", "list").stdout
    moved_plan = local.cdktf("diff (hashed addresses in state)", "diff").output
    assert "docker_volume.postgres_data_67A697DF has moved to docker_volume.postgres_data" in moved_plan
    assert "0 to add, 0 to change, 0 to destroy" in moved_plan, moved_plan[-3000:]
    local.cdktf("redeploy (moves state to stable addresses)", "deploy")
    assert set(local.terraform("state", "list").stdout.split()) >= {
        "docker_container.postgres",
        "docker_volume.postgres_data",
        "terraform_data.post_apply",
    }
    assert local.container_ids() == first_ids
    assert "No changes." in local.cdktf("diff (after the moves)", "diff").output
    # steady state: Docker's own ADR health check (30 s interval) reports healthy
    local.timings["healthy (Docker health check, after deploy)"] = local.wait_healthy()

    # 3. one postgresql.conf setting: only the postgres container is replaced, data stays
    local.edit_config("log_min_duration_statement = 1000", "log_min_duration_statement = 250")
    local.cdktf("deploy after config change", "deploy")
    after = local.container_ids()
    assert after["postgres"] != first_ids["postgres"]
    assert {k: v for k, v in after.items() if k != "postgres"} == {k: v for k, v in first_ids.items() if k != "postgres"}
    with local.connect("postgres", "auth_app", pw["AUTH_DB_PASSWORD"], "auth") as conn:
        assert conn.execute("show log_min_duration_statement").fetchone()[0] == "250ms"
        assert conn.execute("select count(*) from auth.users where email = 'e2e@nexanest.test'").fetchone()[0] == 1

    # 4. rotation through a deploy: auth_app (a login role) and the postgres superuser, whose data volume
    #    still holds the old password (the hooks rotate it through POSTGRES_PASSWORD_PREVIOUS)
    old = {"AUTH_DB_PASSWORD": pw["AUTH_DB_PASSWORD"], "POSTGRES_PASSWORD": pw["POSTGRES_PASSWORD"]}
    rotated = {name: f"{value}-rotated" for name, value in old.items()}
    local.env.update(rotated, POSTGRES_PASSWORD_PREVIOUS=old["POSTGRES_PASSWORD"])
    local.passwords.update(rotated)
    output = local.cdktf("deploy with rotated passwords", "deploy").output
    assert "password rotated for superuser nexanest" in output and "password rotated for auth_app" in output
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        local.connect("postgres", "auth_app", old["AUTH_DB_PASSWORD"], "auth")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        local.connect("postgres", "nexanest", old["POSTGRES_PASSWORD"], "postgres")
    with local.connect("postgres", "auth_app", rotated["AUTH_DB_PASSWORD"], "auth") as conn:
        assert conn.execute("select count(*) from auth.users where email = 'e2e@nexanest.test'").fetchone()[0] == 1
    with local.connect("postgres", "nexanest", rotated["POSTGRES_PASSWORD"], "postgres") as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    assert local.leaks() == []

    # 5. a migration that fails inside the deploy: one line naming file and line, containers stay, ledger honest
    broken = local.root / "sql" / "migrations" / "auth" / "V004__add_users_locale.sql"
    broken.write_text("alter table auth.users add column locale text;\nalter table auth.no_such_table add column x int;\n")
    before_ids = local.container_ids()
    failed = local.cdktf("deploy with a failing migration", "deploy", expect_failure=True)
    # Terraform prints the step's output as it runs, then repeats it (wrapped) in its error box: the line itself is once in the stream.
    (error,) = failed.lines("(local-exec): nndb: error:")
    assert "sql/migrations/auth/V004__add_users_locale.sql:2:" in error and 'relation "auth.no_such_table" does not exist' in error
    assert local.container_ids() == before_ids and all(local.running(i) for i in INSTANCES)
    assert applied(local, "auth") == [0, 1, 2, 3], "the failed migration must not be in the ledger"
    with local.connect("postgres", "nexanest", rotated["POSTGRES_PASSWORD"], "auth") as conn:
        columns = {r[0] for r in conn.execute("select column_name from information_schema.columns where table_name = 'users'")}
        assert "locale" not in columns, "the failed migration's first statement must have rolled back"
    broken.write_text("alter table auth.users add column locale text;\n")
    local.cdktf("deploy after fixing the migration", "deploy")
    assert applied(local, "auth") == [0, 1, 2, 3, 4]
    assert local.container_ids() == before_ids

    # 6. destroy: verified backups first (the guard runs before anything goes), then nothing left
    output = local.cdktf("destroy", "destroy").output
    assert "before-destroy local-db: 3 backups taken and proven by restore" in output
    assert local.names_on_engine() == {"containers": "", "volumes": "", "networks": ""}
    catalog = json_result(local.nndb("backup", "list", "local-db", "--json").stdout, "backup-list")
    last = {
        subject: max((b for b in catalog["backups"] if b["subject"] == subject), key=lambda b: b["taken_at"])
        for subject in catalog["databases"]
    }
    assert all(record["verified"] for record in last.values())
