"""[backup.repository]: the URL's shape, the ssh command nndb runs (no secret in it), the environment override."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from nexanest_db.config import BackupRepository, load_environment
from nexanest_db.errors import BackupError
from nexanest_db.repository import SshRepository
from tests.support.project import REPO_ROOT


def test_url_parts() -> None:
    repo = BackupRepository(url="ssh://nndb-backup@backup.nn.local:2222/srv/nndb-backups/", ssh_opts=["-F", "/etc/nndb/ssh"])
    assert (repo.user, repo.host, repo.port, repo.path) == ("nndb-backup", "backup.nn.local", 2222, "/srv/nndb-backups")
    ssh = SshRepository.of(repo, "prod-db")
    argv = ssh.argv("true")
    assert argv[:3] == ["ssh", "-F", "/etc/nndb/ssh"] and argv[-5:] == ["-l", "nndb-backup", "backup.nn.local", "--", "true"]
    assert "-p" in argv and "BatchMode=yes" in argv
    assert ssh.remote("postgres/auth/x.dump.enc") == "/srv/nndb-backups/prod-db/postgres/auth/x.dump.enc"


@pytest.mark.parametrize(
    "url",
    [
        "rsync://u@h/p",
        "ssh://backup.nn.local/srv",  # no user
        "ssh://u@h",  # no path
        "ssh://u@h/srv/../etc",
        "ssh://u@h/srv;rm -rf /",
        "ssh://u@h:70000/srv",
        "ssh://u@h/srv/$(id)",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        BackupRepository(url=url)


@pytest.mark.parametrize("relative", ["../x", "/etc/passwd", ".lock", "a/../../b", "a b", "a;b"])
def test_catalog_names_cannot_leave_the_stack_directory(relative: str) -> None:
    ssh = SshRepository.of(BackupRepository(url="ssh://u@h/srv"), "local-db")
    with pytest.raises(BackupError, match="not a file name inside the repository"):
        ssh.remote(relative)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_shared_environments_keep_backups_off_the_host(env: str) -> None:
    config_dir = REPO_ROOT / "config"
    config = load_environment(f"{env}-db", config_dir=config_dir)
    assert config.backup.repository is not None and config.backup.repository.host != config.endpoint_host
    assert load_environment("local-db", config_dir=config_dir).backup.repository is None
