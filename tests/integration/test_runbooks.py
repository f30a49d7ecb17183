"""docs/runbooks/*.md as an on-call engineer follows them: their ``sh`` blocks run as written against real servers."""

from __future__ import annotations

import pytest

from nexanest_db.errors import MigrationError
from tests.fixtures.servers import REPO_ROOT, DbStack
from tests.integration.hooks_support import nndb, run_in_process, write_migration
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
