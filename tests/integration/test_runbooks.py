"""docs/runbooks/*.md as an on-call engineer follows them: their ``sh`` blocks run as written against real servers."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest

from nexanest_db.errors import ConnectionFailed, MigrationError, StatusRed
from tests.fixtures.servers import DbStack
from tests.support.hooks import nndb, run_in_process, write_migration
from tests.support.local_servers import STACK_PASSWORDS
from tests.support.project import REPO_ROOT
from tests.support.runbooks import run_blocks, sh_blocks

pytestmark = pytest.mark.integration

RUNBOOKS = REPO_ROOT / "docs" / "runbooks"


def ledger_versions(db_stack: DbStack, service: str) -> list[int]:
    with db_stack.postgres.connect(service) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM nndb.schema_migrations WHERE service = %s ORDER BY 1", (service,))]


def test_add_migration_runbook(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    result = run_blocks(sh_blocks(RUNBOOKS / "add-migration.md"), cwd=db_stack.project, environ=db_stack.environ)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "migrate: wrote sql/migrations/auth/V004__add_login_attempts.sql" in result.stdout
    assert f"migrate status: pending, exit {MigrationError.exit_code}" in result.stdout
    assert ledger_versions(db_stack, "auth") == [0, 1, 2, 3, 4]
    with db_stack.postgres.connect("auth") as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'auth' AND tablename = 'login_attempts'").fetchone()
    assert owner == ("auth_owner",)


def test_deploy_failed_runbook_after_a_failing_migration(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    write_migration(
        db_stack, "portfolio", "V003__add_watchlists.sql", "CREATE TABLE watchlists (id int);\nSELECT no_such_column FROM watchlists;\n"
    )
    failed = nndb(db_stack, "hooks", "run", "local-db")
    assert failed.returncode == MigrationError.exit_code
    assert "sql/migrations/portfolio/V003__add_watchlists.sql:2:" in failed.stderr

    seen = run_blocks(
        sh_blocks(RUNBOOKS / "deploy-failed.md", section="2. See where it stopped"), cwd=db_stack.project, environ=db_stack.environ
    )
    assert seen.returncode == 0, seen.stdout[-3000:] + seen.stderr[-2000:]
    assert "V003      add watchlists" in seen.stdout and "pending" in seen.stdout  # the ledger is honest: not applied
    assert "migrations" in seen.stdout  # hooks list names the plugins

    write_migration(db_stack, "portfolio", "V003__add_watchlists.sql", "CREATE TABLE watchlists (id int);\n")  # the fix
    finished = run_blocks(sh_blocks(RUNBOOKS / "deploy-failed.md", section="4. Finish"), cwd=db_stack.project, environ=db_stack.environ)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-2000:]
    assert "applied V003 add watchlists" in finished.stdout
    assert ledger_versions(db_stack, "portfolio") == [0, 1, 2, 3]


def test_upgrade_image_runbook_backup_first(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    result = run_blocks(
        sh_blocks(RUNBOOKS / "upgrade-image.md", section="1. Before any upgrade"), cwd=db_stack.project, environ=db_stack.environ
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "backup:" in result.stdout
    assert "restored and verified" in result.stdout


# --- on-call runbooks (the alerts' `runbook` annotations, docs/monitoring.md) ---------------------------------------------


def run_sections(db_stack: DbStack, runbook: str, *sections: str):  # type: ignore[no-untyped-def]
    blocks = [block for section in sections for block in sh_blocks(RUNBOOKS / runbook, section=section)]
    return run_blocks(blocks, cwd=db_stack.project, environ=db_stack.environ)


def test_instance_down_runbook_names_the_stopped_instance(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    db_stack.timescale.stop()
    result = run_sections(db_stack, "instance-down.md", "1. What does nndb see")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"status: red, exit {StatusRed.exit_code}" in result.stdout
    assert f"red: timescale: unreachable: timescale at 127.0.0.1:{db_stack.timescale.port}: connection refused" in result.stderr
    assert f"wait-ready: exit {ConnectionFailed.exit_code}" in result.stdout


def test_exporter_down_runbook_shows_the_databases_up(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    result = run_sections(db_stack, "exporter-down.md", "1. Are the databases up?")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.startswith("local-db: OK")


def test_postgres_connections_runbook_names_the_pool(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    pool = [
        db_stack.postgres.connect("auth", user="auth_app", password=STACK_PASSWORDS["AUTH_DB_PASSWORD"], application_name="leaky-pool")
        for _ in range(12)
    ]
    try:
        result = run_sections(db_stack, "postgres-connections.md", "1. Connect", "2. Who holds them")
    finally:
        for conn in pool:
            conn.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^\s*50\s*$", result.stdout, re.M)  # SHOW max_connections (the test servers' setting)
    (row,) = [line for line in result.stdout.splitlines() if "leaky-pool" in line]
    assert [cell.strip() for cell in row.split("|")] == ["auth", "auth_app", "leaky-pool", "idle", "12"]


def test_long_transactions_runbook_names_the_forgotten_transaction(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    forgotten = db_stack.postgres.connect(
        "portfolio",
        user="portfolio_app",
        password=STACK_PASSWORDS["PORTFOLIO_DB_PASSWORD"],
        autocommit=False,
        application_name="forgotten-tx",
    )
    try:
        forgotten.execute("SELECT 42 AS left_open")  # opens the transaction; nothing ends it
        pid = forgotten.info.backend_pid
        result = run_sections(db_stack, "long-transactions.md", "1. Connect", "2. Which session")
    finally:
        forgotten.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = [line for line in result.stdout.splitlines() if line.lstrip().startswith(f"{pid} ")]
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[:4] == [str(pid), "portfolio", "portfolio_app", "forgotten-tx"]
    assert cells[5] == "idle in transaction" and cells[-1] == "SELECT 42 AS left_open"


def test_deadlocks_runbook_counts_a_real_deadlock(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    with db_stack.postgres.connect("portfolio") as setup:
        setup.execute("CREATE TABLE runbook_deadlock (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO runbook_deadlock VALUES (1, 0), (2, 0)")
    first = db_stack.postgres.connect("portfolio", autocommit=False)
    second = db_stack.postgres.connect("portfolio", autocommit=False)
    first.execute("UPDATE runbook_deadlock SET n = 1 WHERE id = 1")
    second.execute("UPDATE runbook_deadlock SET n = 2 WHERE id = 2")
    outcomes: list[str] = []

    def cross(conn, row: int) -> None:  # type: ignore[no-untyped-def]
        try:
            conn.execute("UPDATE runbook_deadlock SET n = 3 WHERE id = %s", (row,))
            conn.commit()
            outcomes.append("committed")
        except psycopg.errors.DeadlockDetected:
            conn.rollback()
            outcomes.append("deadlock")

    waiter = threading.Thread(target=cross, args=(first, 2))
    waiter.start()
    time.sleep(0.5)  # first now waits for second's row lock
    cross(second, 1)
    waiter.join(timeout=30)
    first.close()
    second.close()  # a closed backend flushes its statistics
    assert sorted(outcomes) == ["committed", "deadlock"]

    result = run_sections(db_stack, "deadlocks.md", "1. Connect", "2. How many, where")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    (row,) = [line for line in result.stdout.splitlines() if line.lstrip().startswith("portfolio ")]
    assert row.split("|")[1].strip() == "1"


def test_wal_archiving_runbook_reads_the_archiver(db_stack: DbStack) -> None:
    result = run_sections(db_stack, "wal-archiving.md", "1. Connect", "2. What fails, since when")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^\s*archive_mode\s*$", result.stdout, re.M) and re.search(r"^\s*off\s*$", result.stdout, re.M)
    assert "failed_count" in result.stdout and "last_failed_wal" in result.stdout
    assert re.search(r"^\s*segments \| size\s*$", result.stdout, re.M)


def test_redis_memory_runbook_counts_keys_per_service(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    client = db_stack.redis.client()
    for n in range(40):
        client.set(f"portfolio:quotes:{n}", "x" * 100)
    for n in range(3):
        client.set(f"auth:session:{n}", "y")
    result = run_sections(db_stack, "redis-memory.md", "1. Connect", "2. How full")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^used_memory_human:\S+", result.stdout, re.M) and re.search(r"^maxmemory_human:", result.stdout, re.M)
    assert re.search(r"^evicted_keys:\d+", result.stdout, re.M)
    assert re.search(r"^\s*40 portfolio$", result.stdout, re.M) and re.search(r"^\s*3 auth$", result.stdout, re.M)
    assert STACK_PASSWORDS["REDIS_PASSWORD"] not in result.stdout + result.stderr


def test_redis_rejected_connections_runbook_names_the_user(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    clients = [db_stack.redis.client(username="auth", password=STACK_PASSWORDS["AUTH_REDIS_PASSWORD"]) for _ in range(7)]
    try:
        for client in clients:
            client.ping()  # each client holds its own connection from here on
        result = run_sections(db_stack, "redis-rejected-connections.md", "1. Connect", "2. Who holds them")
    finally:
        for client in clients:
            client.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"^maxclients:\d+", result.stdout, re.M) and re.search(r"^rejected_connections:0", result.stdout, re.M)
    assert re.search(r"^\s*7 user=auth$", result.stdout, re.M)


def test_backup_overdue_runbook_takes_and_proves_a_backup(db_stack: DbStack) -> None:
    run_in_process(db_stack)
    result = run_sections(db_stack, "backup-overdue.md", "1. What the catalog says", "3. Take and prove one now")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert result.stdout.startswith("local-db: OK")
    assert "backup:" in result.stdout and "restored and verified" in result.stdout


def test_tls_certificates_runbook_shows_the_earliest_expiry(tls_db_stack: DbStack) -> None:
    """The test PKI's certificate expires in two days: status is red, and the block still prints each instance's expiry."""
    run_in_process(tls_db_stack)
    result = run_sections(tls_db_stack, "tls-certificates.md", "1. Which certificate")
    assert result.returncode == StatusRed.exit_code, result.stdout[-3000:] + result.stderr[-2000:]
    for name in ("postgres", "timescale", "redis"):
        (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"{name} ")]
        days_left = float(re.search(r"'days_left': ([0-9.]+)", line).group(1))  # type: ignore[union-attr]
        assert "'earliest': 'server certificate'" in line and 1.9 < days_left <= 2.0, line
    assert "TLS: server certificate expires" in result.stderr
