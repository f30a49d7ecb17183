"""Rotation: a new secret version in Vault (or a new env value) plus a re-run of the post-apply hooks
changes the role's password in a real PostgreSQL and the Redis ACL user; the old password stops
working; the other services and their data are untouched.

The hooks run exactly as `cdktf deploy` runs them (`nndb hooks run <stack>` in a subprocess). The
container side of rotation (the uploaded /run/secrets file) is a Terraform concern: its content is a
reference to the data source, so a new value changes the upload; the stack tests check that.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg
import pytest
import redis

from nexanest_db.config import load_environment
from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.servers import DbStack
from tests.fixtures.vault_server import VaultTestServer
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS

pytestmark = pytest.mark.integration

NNDB = str(Path(sys.executable).parent / "nndb")
VALUES_BY_NAME = {
    spec.name: STACK_PASSWORDS[spec.env_var] for spec in SECRET_SPECS if not (spec.tls or spec.pitr or spec.replica_of)
}  # local-db: no TLS, no PITR
VAULT_SECRETS_TABLE = """[secrets]
source = "vault"
[secrets.vault]
mount = "secret"
auth = "token"
[secrets.vault.secrets]
postgres_superuser = { path = "nexanest/local/db/postgres", key = "password" }
timescale_superuser = { path = "nexanest/local/db/timescale", key = "password" }
redis_default = { path = "nexanest/local/db/redis", key = "default_password" }
auth_app = { path = "nexanest/local/db/services/auth", key = "db_password" }
portfolio_app = { path = "nexanest/local/db/services/portfolio", key = "db_password" }
analytics_app = { path = "nexanest/local/db/services/analytics", key = "db_password" }
analytics_readonly = { path = "nexanest/local/db/services/analytics", key = "readonly_password" }
redis_auth = { path = "nexanest/local/db/services/auth", key = "redis_password" }
redis_portfolio = { path = "nexanest/local/db/services/portfolio", key = "redis_password" }
redis_analytics = { path = "nexanest/local/db/services/analytics", key = "redis_password" }
backup_encryption_key = { path = "nexanest/local/db/backup", key = "encryption_key" }
postgres_monitor = { path = "nexanest/local/db/monitoring", key = "postgres_password" }
timescale_monitor = { path = "nexanest/local/db/monitoring", key = "timescale_password" }
redis_monitor = { path = "nexanest/local/db/monitoring", key = "redis_password" }
"""


def run_hooks(db_stack: DbStack, environ: Mapping[str, str]) -> str:
    # The backup phase (pg_dump + restore check) is not what rotation is about: skip it to stay lean.
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(db_stack.project),
        "NNDB_DISABLE_PLUGINS": "backup",
        **CHILD_PYTHONPATH,
        **environ,
    }
    result = subprocess.run(
        [NNDB, "hooks", "run", "local-db"], cwd=db_stack.project, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def can_login(db_stack: DbStack, *, instance: str, database: str, user: str, password: str) -> bool:
    server = db_stack.postgres if instance == "postgres" else db_stack.timescale
    try:
        with server.connect(database, user=user, password=password):
            return True
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc), exc
        return False


def redis_can_auth(db_stack: DbStack, *, user: str, password: str) -> bool:
    try:
        db_stack.redis.client(username=user, password=password).ping()
    except redis.AuthenticationError:
        return False
    return True


def plant_portfolio_data(db_stack: DbStack) -> None:
    """Data of another service that rotation must not touch: a row in its database, a key in Redis."""
    with db_stack.postgres.connect("portfolio") as conn:
        conn.execute("CREATE TABLE portfolio.rotation_witness (note text)")
        conn.execute("INSERT INTO portfolio.rotation_witness VALUES ('kept')")
    db_stack.redis.client(username="portfolio", password=VALUES_BY_NAME["redis_portfolio"]).set("portfolio:witness", "kept")


def assert_portfolio_untouched(db_stack: DbStack) -> None:
    with db_stack.postgres.connect("portfolio", user="portfolio_app", password=VALUES_BY_NAME["portfolio_app"]) as conn:
        assert conn.execute("SELECT note FROM portfolio.rotation_witness").fetchall() == [("kept",)]
    assert db_stack.redis.client(username="portfolio", password=VALUES_BY_NAME["redis_portfolio"]).get("portfolio:witness") == "kept"


def test_new_vault_version_rotates_the_role_and_the_redis_user(db_stack: DbStack, vault_server: VaultTestServer) -> None:
    config_file = db_stack.project / "config" / "local.toml"
    config_file.write_text(config_file.read_text().replace('[secrets]\nsource = "env"\n', VAULT_SECRETS_TABLE))
    settings = load_environment("local-db", config_dir=db_stack.project / "config").secrets.vault
    assert settings is not None
    vault_server.seed(settings, VALUES_BY_NAME)
    # Only endpoints and Vault in the environment: every password comes from Vault.
    environ = {k: v for k, v in db_stack.environ.items() if k not in STACK_PASSWORDS}
    environ |= {"VAULT_ADDR": vault_server.url, "VAULT_TOKEN": vault_server.issue_token()}

    run_hooks(db_stack, environ)
    old_db, old_redis = VALUES_BY_NAME["auth_app"], VALUES_BY_NAME["redis_auth"]
    assert can_login(db_stack, instance="postgres", database="auth", user="auth_app", password=old_db)
    assert redis_can_auth(db_stack, user="auth", password=old_redis)
    plant_portfolio_data(db_stack)

    new_db, new_redis = "rotated-auth-db-Secret-v2", "rotated-auth-redis-Secret-v2"
    assert vault_server.put("nexanest/local/db/services/auth", {"db_password": new_db, "redis_password": new_redis}) == 2
    output = run_hooks(db_stack, environ)

    assert new_db not in output and new_redis not in output
    assert can_login(db_stack, instance="postgres", database="auth", user="auth_app", password=new_db)
    assert not can_login(db_stack, instance="postgres", database="auth", user="auth_app", password=old_db)
    assert redis_can_auth(db_stack, user="auth", password=new_redis)
    assert not redis_can_auth(db_stack, user="auth", password=old_redis)
    assert_portfolio_untouched(db_stack)
    assert can_login(db_stack, instance="timescale", database="analytics", user="analytics_app", password=VALUES_BY_NAME["analytics_app"])


def test_new_env_value_rotates_the_role(db_stack: DbStack) -> None:
    run_hooks(db_stack, db_stack.environ)
    old = VALUES_BY_NAME["analytics_readonly"]
    assert can_login(db_stack, instance="timescale", database="analytics", user="analytics_readonly", password=old)

    run_hooks(db_stack, {**db_stack.environ, "ANALYTICS_READONLY_PASSWORD": "rotated-analytics-ro-Secret-v2"})

    assert can_login(
        db_stack, instance="timescale", database="analytics", user="analytics_readonly", password="rotated-analytics-ro-Secret-v2"
    )
    assert not can_login(db_stack, instance="timescale", database="analytics", user="analytics_readonly", password=old)
    assert can_login(db_stack, instance="timescale", database="analytics", user="analytics_app", password=VALUES_BY_NAME["analytics_app"])
    assert can_login(db_stack, instance="postgres", database="auth", user="auth_app", password=VALUES_BY_NAME["auth_app"])
