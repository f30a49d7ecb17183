"""The backup repository off the host: dumps and the one catalog on a second host over ssh (real sshd).

The "backup host" is a real sshd on 127.0.0.1 (tests/fixtures/sshd.py) logging in as ``nndb-backup``,
whose repository directory (mode 0700) is its own: every file there got there through ssh. A second
project copy with its own (empty) local directory is the second operator machine: it lists,
verifies and restores from the same repository, and two writers running at once lose nothing.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nexanest_db.errors import BackupError
from tests.fixtures.servers import DbStack
from tests.fixtures.sshd import BACKUP_USER, SshTarget
from tests.support.hooks import nndb, run_in_process
from tests.support.local_servers import STACK_PASSWORDS
from tests.support.project import copy_project

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Repository:
    path: Path  # on the "backup host" (this machine, owned by nndb-backup)
    url: str

    @property
    def stack_dir(self) -> Path:
        return self.path / "local-db"

    def catalog(self) -> dict:
        return json.loads((self.stack_dir / "catalog.json").read_text())


@pytest.fixture
def repository(backup_ssh_target: SshTarget) -> Iterator[Repository]:
    owner = pwd.getpwnam(BACKUP_USER)
    path = Path(owner.pw_dir) / f"repo-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    os.chown(path, owner.pw_uid, owner.pw_gid)
    try:
        yield Repository(path=path, url=f"ssh://{BACKUP_USER}@{backup_ssh_target.host}{path}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


def use_repository(project: Path, repository: Repository, target: SshTarget) -> None:
    """What an operator writes in config/<env>.toml: the repository URL and how ssh finds the host."""
    config = project / "config" / "local.toml"
    opts = json.dumps(target.ssh_opts)
    config.write_text(config.read_text() + f'\n[backup.repository]\nurl = "{repository.url}"\nssh_opts = {opts}\n')


def operator_b(stack: DbStack, workdir: Path, repository: Repository, target: SshTarget) -> dict[str, str]:
    """A second project copy with its own local backup directory: another operator's machine."""
    project = copy_project(workdir / "operator-b")
    use_repository(project, repository, target)
    return {**stack.environ, "NNDB_PROJECT_DIR": str(project), "NNDB_BACKUP_DIR": str(workdir / "operator-b-cache")}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def add_portfolios(stack: DbStack, count: int) -> None:
    with stack.postgres.connect("portfolio") as conn:
        conn.execute(
            "INSERT INTO portfolio.portfolios (owner_user_id, name) SELECT g, md5(random()::text) FROM generate_series(1, %s) g", (count,)
        )


def portfolios(stack: DbStack) -> int:
    with stack.postgres.connect("portfolio") as conn:
        return conn.execute("SELECT count(*) FROM portfolio.portfolios").fetchone()[0]


def test_backups_live_in_the_repository_and_any_operator_restores_from_it(
    db_stack: DbStack, repository: Repository, backup_ssh_target: SshTarget, tmp_path: Path
) -> None:
    use_repository(db_stack.project, repository, backup_ssh_target)
    run_in_process(db_stack)  # the backup hook registers each database and takes its first backup

    # The catalog and the dumps are on the backup host, the backup user's, 0600; the local directory keeps none.
    owner = pwd.getpwnam(BACKUP_USER).pw_uid
    first = repository.catalog()
    assert len(first["backups"]) == 3 and all(b["verified"] for b in first["backups"])
    for record in first["backups"]:
        info = (repository.stack_dir / record["file"]).stat()
        assert info.st_uid == owner and stat.S_IMODE(info.st_mode) == 0o600
    assert (repository.stack_dir / "catalog.json").stat().st_uid == owner
    local = db_stack.backup_dir / "local-db"
    assert not [p for p in local.rglob("*") if p.name.endswith((".dump.enc", ".partial"))]
    assert json.loads((local / ".repository.json").read_text())["url"] == repository.url

    # Operator B (a second copy, an empty cache) lists the same catalog.
    env_b = operator_b(db_stack, tmp_path, repository, backup_ssh_target)
    listing = ok(nndb(db_stack, "backup", "list", "local-db", environ=env_b))
    assert all(record["id"] in listing for record in first["backups"])

    # Two writers at once (A and B): the repository lock serialises them; no run's records are lost.
    env_a = {**db_stack.environ}
    add_portfolios(db_stack, 40)
    runs = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "nndb"), "backup", "run", "local-db", "--scheduled"],
            cwd=db_stack.project,
            env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(db_stack.project), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in (env_a, env_b)
    ]
    for process in runs:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, out + err
    both = repository.catalog()
    assert len(both["backups"]) == 11, [b["id"] for b in both["backups"]]
    assert all((repository.stack_dir / b["file"]).stat().st_uid == owner for b in both["backups"])
    assert not list(repository.stack_dir.rglob(".*.partial"))
    runs_file = json.loads((repository.stack_dir / "schedule.json").read_text())
    assert len(runs_file["runs"]) == 2 and all(r["ok"] for r in runs_file["runs"])
    assert "scheduled runs: 2 recorded (0 failed)" in ok(nndb(db_stack, "backup", "list", "local-db", environ=env_b))

    # B restores A's first backup of portfolio (fetched from the repository) over the live database.
    chosen = next(b for b in first["backups"] if b["subject"] == "postgres/portfolio")
    add_portfolios(db_stack, 5)
    ok(nndb(db_stack, "backup", "restore", "local-db", "portfolio", "--backup", chosen["id"], environ=env_b))
    assert portfolios(db_stack) == chosen["row_counts"]["portfolio.portfolios"]
    after = repository.catalog()
    assert len(after["backups"]) == 12, "the fresh backup of the state before the restore is in the repository"
    assert (
        ok(nndb(db_stack, "backup", "verify", "local-db", environ=env_b))
        .strip()
        .splitlines()[-1]
        .startswith("backup: 4 latest backups restored and verified")
    )
    assert not [p for p in (tmp_path / "operator-b-cache").rglob("*") if p.name.endswith(".dump.enc")], "B's cache keeps no dump"

    # A writer holding the lock (a run elsewhere) makes the next one wait, then give up with one line; when the
    # holder dies (its ssh session ends: kill -9, a dropped link) the lock is free again.
    hold = f"flock {repository.stack_dir}/.lock sh -c 'echo held && exec cat >/dev/null'"
    holder = subprocess.Popen(
        ["ssh", *backup_ssh_target.ssh_opts, "-l", BACKUP_USER, backup_ssh_target.host, "--", hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        config_b = Path(env_b["NNDB_PROJECT_DIR"]) / "config" / "local.toml"
        config_b.write_text(config_b.read_text() + "lock_timeout_s = 2\n")  # still inside [backup.repository]
        blocked = nndb(db_stack, "backup", "run", "local-db", environ=env_b)
        assert blocked.returncode == BackupError.exit_code, blocked.stdout + blocked.stderr
        assert "another nndb run held the lock for 2s" in blocked.stderr and len(blocked.stderr.splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert len(repository.catalog()["backups"]) == 12, "the blocked run changed nothing"
    ok(nndb(db_stack, "backup", "run", "local-db", "--no-verify", "--no-redis", environ=env_b))

    # Export from B: the dump is fetched, checked and decrypted into a pg_restore-able file.
    exported = tmp_path / "portfolio.dump"
    ok(nndb(db_stack, "backup", "export", "local-db", "portfolio", "--backup", chosen["id"], "-o", str(exported), environ=env_b))
    assert exported.read_bytes()[:5] == b"PGDMP"


def test_an_unreachable_repository_is_one_line_and_changes_nothing(
    db_stack: DbStack, repository: Repository, backup_ssh_target: SshTarget
) -> None:
    use_repository(db_stack.project, repository, backup_ssh_target)
    unreachable = {**db_stack.environ, "NNDB_BACKUP_REPOSITORY": f"ssh://{BACKUP_USER}@{backup_ssh_target.host}:1{repository.path}"}
    result = nndb(db_stack, "backup", "run", "local-db", environ=unreachable)
    assert result.returncode == BackupError.exit_code, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"nndb: error: backup repository ssh://{BACKUP_USER}@{backup_ssh_target.host}:1{repository.path}/local-db: ")
    assert "check that the backup host is reachable" in line and "Traceback" not in result.stderr
    assert all(value not in result.stdout + result.stderr for value in STACK_PASSWORDS.values())
    assert list(repository.path.iterdir()) == []

    bad = {**db_stack.environ, "NNDB_BACKUP_REPOSITORY": "ftp://somewhere/x"}
    result = nndb(db_stack, "backup", "list", "local-db", environ=bad)
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1 and "NNDB_BACKUP_REPOSITORY" in result.stderr
