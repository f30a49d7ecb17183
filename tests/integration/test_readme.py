"""README.md's daily-use commands, parsed from the README so they cannot drift, run as written against real servers.

The set-up (`scripts/up.sh`: a deployed local-db with its hooks run) is the ``db_stack`` servers with
the hooks applied; the README's ``sh`` block under "Daily use" then runs in the project copy with
only the stack's environment. Every `nndb` command of the daily-use table is either in that block
or named below with the test that runs it.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.fixtures.servers import DbStack
from tests.support.cli_json import json_result
from tests.support.hooks import run_in_process
from tests.support.project import REPO_ROOT
from tests.support.runbooks import run_blocks, sh_blocks

pytestmark = pytest.mark.integration

README = REPO_ROOT / "README.md"
# Table commands the block does not run, and where they are run as a user runs them.
ELSEWHERE = {
    "nndb migrate new": "docs/runbooks/add-migration.md (test_runbooks.py::test_add_migration_runbook)",
    "nndb backup restore": "docs/runbooks/restore.md (test_runbook_restore.py)",
    "nndb backup export": "docs/runbooks/restore.md (test_runbook_restore.py)",
    "nndb backup pitr": "needs a pitr = true stack (test_pitr.py)",
    "nndb backup schedule": "writes /etc/cron.d (test_backup_schedule.py)",
    "nndb drift": "test_drift.py, against a tier the hooks deployed",
    "nndb plan": "needs a git base ref (test_plan.py)",
    "nndb failover": "needs a replica (tests/e2e/test_failover_engine.py)",
    "nndb swarm secrets": "needs a Swarm manager (tests/e2e/test_swarm_secrets.py)",
    "nndb upgrade": "changes an image: needs the Docker engine (tests/e2e/test_upgrade_engine.py)",
}
TABLE_COMMAND = re.compile(r"^\| `(nndb [^`<]+?)\s*(?:<[^`]*)?`", re.M)


def daily_block() -> list[str]:
    blocks = sh_blocks(README, section="Daily use")
    assert len(blocks) == 1, "README's Daily use section has one sh block: the morning round"
    return blocks


def table_commands() -> list[str]:
    """`nndb backup run/list/verify <stack>` -> nndb backup run, nndb backup list, nndb backup verify."""
    found: list[str] = []
    section = README.read_text(encoding="utf-8").split("## Daily use", 1)[1].split("\n## ", 1)[0]
    for match in TABLE_COMMAND.finditer(section):
        *head, last = match[1].split()
        found += [" ".join([*head, word]) for word in last.split("/")]
    return found


def test_every_daily_use_command_is_run_somewhere() -> None:
    commands = table_commands()
    assert {"nndb wait-ready", "nndb backup verify", "nndb synth", "nndb status"} <= set(commands)
    script = "\n".join(daily_block())
    missing = [c for c in commands if not any(c.startswith(e) for e in ELSEWHERE) and not re.search(rf"^{re.escape(c)}\b", script, re.M)]
    assert missing == [], "add them to README's daily-use sh block (or to ELSEWHERE, naming the test that runs them)"


def test_the_daily_round_runs_as_written(db_stack: DbStack) -> None:
    run_in_process(db_stack)  # what scripts/up.sh's deploy leaves: the hooks ran
    shutil.copy2(REPO_ROOT / "main.py", db_stack.project / "main.py")  # the servers' project copy is a checkout: synth too
    result = run_blocks(daily_block(), cwd=db_stack.project, environ=db_stack.environ, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^ready local-db: postgres .* \(in \d+\.\d+s\)$", out, re.M)
    assert "hooks: 0 changes (up to date)" in out
    assert "migrate: 4 applied, up to date" in out or re.search(r"^migrate: \d+ applied, up to date$", out, re.M)
    assert re.search(r"^backup: 4 backups taken \(total \d+\.\d+s\)$", out, re.M)
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ backup postgres/auth: dump \+ restore to prove it: done in \d+\.\d+s$", out, re.M)
    assert "backup: 4 latest backups restored and verified" in out
    assert re.search(r"^all \d+ secrets present$", out, re.M)
    assert out.count("local-db: OK") == 1  # the text status; the JSON one went to status.json
    report = json_result((db_stack.project / "status.json").read_text(encoding="utf-8"), "status")
    assert report["state"] == "ok" and report["stack"] == "local-db"
    assert re.search(r"^synth: 4 stacks written to .*/cdktf.out/stacks in \d+\.\d+s$", out, re.M)
    for stack in ("local-db", "dev-db", "staging-db", "prod-db"):
        assert (db_stack.project / "cdktf.out" / "stacks" / stack / "cdk.tf.json").is_file()
    assert "Traceback" not in result.stderr
