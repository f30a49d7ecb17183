"""`nndb wait-ready` and `nndb before-destroy` (what a stack runs around its containers) against real servers.

The deploy scenario (tests/e2e/test_deploy_local_db.py) runs both through Terraform; these run in CI,
where there are no provider binaries: the probes against real PostgreSQL/Redis servers (TLS too), the
one-line failure, and the destroy guard's refusal, its verified backup and its explicit opt-out.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb
from tests.support.local_servers import STACK_PASSWORDS, free_port

pytestmark = pytest.mark.integration


def rename(db_stack: DbStack, *, require_confirmation: bool | None = None) -> str:
    """A unique name_prefix (so the engine is asked about containers nobody has); optionally the destroy setting."""
    prefix = f"nndb-lc-{uuid.uuid4().hex[:8]}"
    config = db_stack.project / "config" / "local.toml"
    text = config.read_text().replace('name_prefix = "nexanest-local"', f'name_prefix = "{prefix}"')
    if require_confirmation is not None:
        old = "require_confirmation = false"
        assert old in text, "config/local.toml no longer sets [destroy] require_confirmation = false"
        text = text.replace(old, f"require_confirmation = {str(require_confirmation).lower()}")
    config.write_text(text)
    return prefix


def test_wait_ready_returns_once_postgres_timescale_and_redis_answer(db_stack: DbStack) -> None:
    result = nndb(db_stack, "wait-ready", "local-db", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("ready local-db:")]
    for server in (db_stack.postgres, db_stack.timescale, db_stack.redis):
        assert f"{server.host}:{server.port}" in line


def test_wait_ready_speaks_tls_to_a_tls_only_redis(tls_db_stack: DbStack) -> None:
    result = nndb(tls_db_stack, "wait-ready", "local-db", "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_database_that_never_answers_is_one_line_naming_its_container(db_stack: DbStack) -> None:
    prefix = rename(db_stack)
    environ = {**db_stack.environ, "REDIS_PORT": str(free_port())}  # nothing listens there
    result = nndb(db_stack, "wait-ready", "local-db", "--timeout", "30", environ=environ)
    assert result.returncode == 4, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    # No such container on the engine: known at the first look, so no 30 s wait.
    assert line.startswith(f"nndb: error: redis: container {prefix}-redis did not answer on 127.0.0.1:{environ['REDIS_PORT']} after ")
    assert "it is missing (no such container on the engine)" in line
    assert int(line.split(" after ")[1].split(" s;")[0]) < 10


def test_destroy_needs_confirmation_where_the_config_asks_for_it(db_stack: DbStack) -> None:
    rename(db_stack, require_confirmation=True)
    assert nndb(db_stack, "hooks", "run", "local-db").returncode == 0
    catalog = db_stack.backup_dir / "local-db" / "catalog.json"
    before = json.loads(catalog.read_text())["backups"]

    refused = nndb(db_stack, "before-destroy", "local-db")
    assert refused.returncode == 8, refused.stdout + refused.stderr
    assert refused.stderr.strip() == (
        "nndb: error: local-db: destroy not confirmed; its data volumes would be deleted: set NNDB_CONFIRM_DESTROY=local-db "
        "to confirm (a verified backup is taken first), then run the destroy again; nothing was removed"
    )
    assert json.loads(catalog.read_text())["backups"] == before, "a refused destroy takes no backup"
    wrong = nndb(db_stack, "before-destroy", "local-db", environ={**db_stack.environ, "NNDB_CONFIRM_DESTROY": "dev-db"})
    assert wrong.returncode == 8

    confirmed = nndb(db_stack, "before-destroy", "local-db", environ={**db_stack.environ, "NNDB_CONFIRM_DESTROY": "local-db"})
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    after = json.loads(catalog.read_text())["backups"]
    new = [record for record in after if record not in before]
    assert sorted(record["subject"] for record in new) == ["postgres/auth", "postgres/portfolio", "timescale/analytics"]
    assert all(record["verified"] is True and record["encrypted"] is True for record in new)
    for secret in STACK_PASSWORDS.values():
        assert secret not in confirmed.stdout + confirmed.stderr


def test_no_proven_backup_stops_the_destroy_unless_explicitly_skipped(db_stack: DbStack) -> None:
    rename(db_stack)  # local.toml: require_confirmation = false
    assert nndb(db_stack, "hooks", "run", "local-db").returncode == 0
    down = {**db_stack.environ, "TIMESCALE_PORT": str(free_port())}  # timescale does not answer any more
    stopped = nndb(db_stack, "before-destroy", "local-db", environ=down)
    assert stopped.returncode == 8, stopped.stdout + stopped.stderr
    (line,) = stopped.stderr.strip().splitlines()
    assert line.startswith("nndb: error: local-db: no proven backup, destroy stopped with nothing removed: ")
    assert line.endswith("(to destroy anyway, without a backup: NNDB_DESTROY_WITHOUT_BACKUP=local-db)")

    skipped = nndb(db_stack, "before-destroy", "local-db", environ={**down, "NNDB_DESTROY_WITHOUT_BACKUP": "local-db"})
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "destroying WITHOUT a backup" in skipped.stdout
