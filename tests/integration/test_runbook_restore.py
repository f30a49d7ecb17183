"""docs/runbooks/restore.md is what an on-call engineer runs: every ``sh`` block, in order, in a project copy.

The blocks run in one bash (``set -euo pipefail``) from the project directory with the stack's
environment, exactly as written; then the test checks the outcome the runbook promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.redis_server import start_redis
from tests.fixtures.servers import DbStack, running_db_stack
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import CHILD_PYTHONPATH, STACK_PASSWORDS, ServerSetupError
from tests.support.project import REPO_ROOT

pytestmark = pytest.mark.integration

RUNBOOK = REPO_ROOT / "docs" / "runbooks" / "restore.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def runbook_blocks(path: Path) -> list[str]:
    return SH_BLOCK.findall(path.read_text(encoding="utf-8"))


def test_runbook_has_the_sections_the_issue_asks_for() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    for heading in (
        "## 2. Restore one service",
        "## 4. When a restore fails halfway",
        "## 5. An instance as of a time (point-in-time recovery)",
        "## 6. Prove it again",
        "## 7. Redis",
    ):
        assert heading in text
    assert len(runbook_blocks(RUNBOOK)) >= 6


@pytest.fixture
def own_redis_stack(pg_template: Path, tmp_path: Path) -> Iterator[DbStack]:
    """The runbook restores Redis too: a server of its own (the session's is shared with other tests)."""
    try:
        server = start_redis(password=STACK_PASSWORDS["REDIS_PASSWORD"])
    except ServerSetupError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        with running_db_stack(pg_template, server, tmp_path) as stack:
            yield stack
    finally:
        server.stop()


def test_runbook_commands_run_as_written(own_redis_stack: DbStack) -> None:
    db_stack = own_redis_stack
    run_in_process(db_stack)
    with db_stack.postgres.connect("portfolio") as conn:
        conn.execute("INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, 'runbook' || g FROM generate_series(1, 12) g")
    cache = db_stack.redis.client()
    cache.mset({f"portfolio:cache:{i}": str(i) for i in range(20)})
    assert nndb(db_stack, "backup", "run", "local-db").returncode == 0
    with db_stack.postgres.connect("portfolio") as conn:
        conn.execute("DELETE FROM portfolio.portfolios WHERE owner_user_id > 2")  # the accident the restore undoes
    cache.delete(*[f"portfolio:cache:{i}" for i in range(10)])  # and its Redis side
    cache.set("portfolio:cache:written-after", "x")
    cache.close()

    script = "set -euo pipefail\n" + "\n".join(runbook_blocks(RUNBOOK))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(db_stack.project), **CHILD_PYTHONPATH, **db_stack.environ}
    result = subprocess.run(["bash", "-c", script], cwd=db_stack.project, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "restore: postgres/portfolio backup" in result.stdout and "beside portfolio" in result.stdout
    assert "backup: 4 latest backups restored and verified" in result.stdout  # 3 databases and Redis
    with db_stack.postgres.connect("portfolio") as conn:
        assert conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone() == (12,), "the deleted rows are back"
    with db_stack.postgres.connect("portfolio_inspect") as conn:  # the latest backup by then: the restore's fresh one
        assert conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone() == (2,), "the state before the restore"
    assert "restore: redis/dataset backup" in result.stdout
    cache = db_stack.redis.client()
    assert cache.mget([f"portfolio:cache:{i}" for i in range(20)]) == [str(i) for i in range(20)], "Redis as of the snapshot"
    assert cache.get("portfolio:cache:written-after") is None
    cache.close()
