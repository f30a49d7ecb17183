"""`nndb upgrade` without servers: the version verdict, the data comparison, the apply command, the rollback logic."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nexanest_db.commands.lifecycle import _timeout_from
from nexanest_db.config import load_environment
from nexanest_db.config_edit import image_edit
from nexanest_db.errors import BackupError, ConfigError, ConnectionFailed, UpgradeError, UsageError
from nexanest_db.operations.upgrade import (
    WAIT_READY_TIMEOUT_VARIABLE,
    ApplyResult,
    CommandApplier,
    DataRecord,
    ImageFacts,
    UpgradePlan,
    apply_argv,
    compare_records,
    failure_detail,
    major_from_env,
    major_from_version_output,
    plan_upgrade,
    record_redis,
    upgrade,
)
from nexanest_db.operations.upgrade_major import DataDirectory, compare_restored, data_directory_of, dump_restore
from tests.support.project import REPO_ROOT

# --- the version verdict ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "kind", "expected"),
    [
        (["PATH=/usr/bin", "PG_MAJOR=15", "PG_VERSION=15.8-1.pgdg120+1"], "postgres", (15, "PG_MAJOR")),
        (["PG_VERSION=16.4"], "postgres", (16, "PG_VERSION")),  # an image that sets only the full version
        (["REDIS_VERSION=7.2.4"], "redis", (7, "REDIS_VERSION")),
        (["PG_MAJOR=latest"], "postgres", (None, "unknown")),
        ([], "postgres", (None, "unknown")),
        (["PG_MAJOR=15"], "redis", (None, "unknown")),
    ],
)
def test_major_from_the_images_environment(env: list[str], kind: str, expected: tuple[int | None, str]) -> None:
    assert major_from_env(env, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)\n", "postgres", 15),
        ("postgres (PostgreSQL) 16beta2\n", "postgres", 16),
        ("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1\n", "redis", 7),
        ("exec: postgres: not found\n", "postgres", None),
    ],
)
def test_major_from_version_output(text: str, kind: str, expected: int | None) -> None:
    assert major_from_version_output(text, kind) == expected


def facts(major: int | None, ref: str = "postgres:15.8") -> ImageFacts:
    return ImageFacts(ref=ref, image_id="sha256:" + "a" * 64, major=major, source="PG_MAJOR" if major else "unknown")


def plan(*, instance: str = "postgres", new_major: int | None = 15, from_major: int = 15, path: str | None = None) -> UpgradePlan:
    return plan_upgrade(
        stack="local-db",
        instance=instance,
        from_image="postgres:15",
        to_image="new:tag",
        from_major=from_major,
        new=facts(new_major, "new:tag"),
        path=path,
    )


def test_the_same_major_is_an_upgrade_without_a_path() -> None:
    made = plan()
    assert not made.major_change and made.path is None
    lines = made.steps(apply="cdktf deploy local-db --auto-approve", wait_timeout_s=30, config_file=Path("config/local.toml"))
    assert lines[0].startswith("1. take a proven backup of postgres") and "cdktf deploy local-db --auto-approve" in lines[2]
    assert lines[-1].startswith("5. if not: put postgres:15 back")


def test_a_major_change_without_a_path_is_refused_in_one_line() -> None:
    with pytest.raises(UpgradeError) as caught:
        plan(new_major=16)
    message = str(caught.value)
    assert caught.value.exit_code == 16 and "\n" not in message
    assert message.startswith("local-db: postgres: new:tag is PostgreSQL 16, the server runs 15 on its data volume")
    assert "nothing was changed" in message and "--path dump-restore or --path pg-upgrade" in message
    assert plan(new_major=16, path="dump-restore").major_change  # with an explicit path it is a plan


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"new_major": 14}, "a downgrade cannot read newer data files"),
        ({"new_major": 14, "path": "pg-upgrade"}, "a downgrade cannot read newer data files"),
        ({"new_major": None}, "cannot tell which PostgreSQL major version new:tag runs (no PG_MAJOR or PG_VERSION"),
        ({"instance": "redis", "new_major": 8, "from_major": 7}, "so there is no rollback"),
    ],
)
def test_refused_always(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UpgradeError, match="refused, nothing was changed") as caught:
        plan(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"path": "dump-restore"}, "a minor upgrade needs no path, drop it"),
        ({"instance": "redis", "from_major": 7, "new_major": 7, "path": "dump-restore"}, "--path is for a PostgreSQL major upgrade"),
        ({"instance": "mysql"}, "instance 'mysql': pick one of postgres, timescale, redis"),
        ({"new_major": 16, "path": "rsync"}, "--path rsync: pick one of dump-restore, pg-upgrade"),
    ],
)
def test_usage_errors(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        plan(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value) and caught.value.exit_code == 2


# --- the data, before and after ----------------------------------------------------------------------


def test_compare_records_finds_another_data_directory_and_lost_tables_but_not_new_writes() -> None:
    before = DataRecord(identity="7001", counts={"auth": {"auth.users": 3, "auth.empty": 0}, "portfolio": {"portfolio.p": 1}})
    assert compare_records(before, DataRecord(identity="7001", counts={**before.counts, "auth": {"auth.users": 5, "auth.empty": 0}})) == []
    fresh = DataRecord(identity="9002", counts={"auth": {"auth.users": 0, "auth.empty": 0}})
    assert compare_records(before, fresh) == [
        "system identifier 9002, was 7001: another data directory (initdb ran again)",
        "auth: auth.users had 3 rows, has none",
        "database portfolio is gone",
    ]
    assert compare_records(before, DataRecord(identity="7001", counts={"auth": {"auth.users": 3}, "portfolio": {}})) == [
        "auth: table auth.empty is gone",
        "portfolio: table portfolio.p is gone",
    ]
    assert before.summary() == "system identifier 7001, 2 databases, 3 tables, 4 rows"


def test_redis_records_count_keys_per_database() -> None:
    record = record_redis({"db0": {"keys": 4, "expires": 1, "avg_ttl": 0}, "db2": {"keys": 1}})
    assert record.counts == {"db0": {"keys": 4}, "db2": {"keys": 1}} and record.summary() == "2 databases, 5 keys"
    assert compare_records(record, record_redis({"db0": {"keys": 0}, "db2": {"keys": 9}})) == ["db0: had 4 keys, has none"]


# --- applying the stack ------------------------------------------------------------------------------


def test_apply_argv_splits_without_a_shell_and_names_the_stack() -> None:
    assert apply_argv("cdktf deploy {stack} --auto-approve", "dev-db") == ("cdktf", "deploy", "dev-db", "--auto-approve")
    assert apply_argv("./deploy.sh 'stack {stack}'; rm -rf /", "dev-db") == ("./deploy.sh", "stack dev-db;", "rm", "-rf", "/")
    for bad in ("", "   ", "cdktf 'unclosed"):
        with pytest.raises(UsageError, match="--apply-command"):
            apply_argv(bad, "dev-db")


def test_failure_detail_prefers_nndbs_own_line_inside_terraforms_box() -> None:
    lines = [
        "local-db  docker_container.postgres: Creation complete after 1s",
        "│ Error: local-exec provisioner error",
        "│ Error running command 'nndb wait-ready local-db': exit status 4. Output:",
        "│ nndb: error: postgres: container c did not answer on 127.0.0.1:5432 after 3 s; it is running",
        "╵",
    ]
    assert failure_detail(lines, 1, "cdktf deploy") == "postgres: container c did not answer on 127.0.0.1:5432 after 3 s; it is running"
    assert failure_detail(["│ Error: Unable to pull image x: not found", "╵"], 1, "cdktf deploy") == "Unable to pull image x: not found"
    assert failure_detail(["something", "the end"], 3, "deploy.sh") == "deploy.sh exited 3: the end"
    assert failure_detail([], 3, "deploy.sh") == "deploy.sh exited 3"


def test_failure_detail_reads_cdktfs_real_output_with_escapes_and_the_wrapped_box() -> None:
    # The tail of a real `cdktf deploy` whose wait-ready failed (kreuzwerker/docker 3.6.2, cdktf-cli 0.20):
    # terminal escapes, "local-db  " prefixes, and Terraform's box wrapping nndb's line at 80 columns.
    lines = (REPO_ROOT / "tests" / "fixtures" / "cdktf-deploy-failure-tail.txt").read_text().splitlines()
    detail = failure_detail(lines, 1, "cdktf deploy local-db --auto-approve")
    assert detail.startswith("postgres: container nndb-e2e-local-546c54ba-postgres did not answer on 127.0.0.1:49033 after 20 s;")
    assert detail.endswith("last log lines: stand-in never-ready: this server never starts; fix the cause, then run the deploy again")
    assert "\x1b" not in detail
    wrapped_only = [line for line in lines if "(local-exec):" not in line]  # the box alone: joined back into one line
    assert failure_detail(wrapped_only, 1, "cdktf deploy") == detail


def test_command_applier_streams_lines_passes_the_wait_bound_and_reports_the_error_line(tmp_path: Path) -> None:
    script = f'echo "wait bound $${WAIT_READY_TIMEOUT_VARIABLE}"; echo "nndb: error: it broke" >&2; exit 4'
    applier = CommandApplier(argv=("sh", "-c", script.replace("$$", "$")), cwd=tmp_path, environ={"PATH": "/usr/bin:/bin"})
    seen: list[str] = []
    result = applier.apply(wait_timeout_s=12.5, on_line=seen.append)
    assert result == ApplyResult(ok=False, detail="it broke")
    assert seen == ["wait bound 12.5", "nndb: error: it broke"]
    assert CommandApplier(argv=("true",), cwd=tmp_path, environ={"PATH": "/usr/bin:/bin"}).apply(
        wait_timeout_s=1, on_line=seen.append
    ) == ApplyResult(ok=True, detail="")
    missing = CommandApplier(argv=("no-such-deployer-xyz",), cwd=tmp_path, environ={"PATH": "/usr/bin:/bin"})
    assert "no-such-deployer-xyz: cannot run it" in missing.apply(wait_timeout_s=1, on_line=seen.append).detail


def test_command_applier_stops_a_command_that_outlives_its_timeout(tmp_path: Path) -> None:
    applier = CommandApplier(argv=(sys.executable, "-c", "import time; time.sleep(30)"), cwd=tmp_path, environ={}, timeout_s=0.5)
    result = applier.apply(wait_timeout_s=1, on_line=lambda line: None)
    assert not result.ok and "did not finish within 0.5s and was stopped" in result.detail


def test_wait_ready_takes_its_bound_from_the_upgrade() -> None:
    assert _timeout_from({}, 180.0) == 180.0
    assert _timeout_from({WAIT_READY_TIMEOUT_VARIABLE: "12.5"}, 180.0) == 12.5
    for bad in ("0", "-3", "soon", "inf", "nan"):
        with pytest.raises(ConfigError, match=f"{WAIT_READY_TIMEOUT_VARIABLE}="):
            _timeout_from({WAIT_READY_TIMEOUT_VARIABLE: bad}, 180.0)


# --- the config edit -----------------------------------------------------------------------------------


def config_copy(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for source in (REPO_ROOT / "config").glob("*.toml"):
        (config_dir / source.name).write_text(source.read_text())
    return config_dir


def test_image_edit_changes_one_line_and_reverts_to_the_exact_text(tmp_path: Path) -> None:
    config_dir = config_copy(tmp_path)
    before = (config_dir / "local.toml").read_text()
    edit = image_edit("local-db", config_dir, instance="timescale", image="timescale/timescaledb:2.14.2-pg15")
    assert (config_dir / "local.toml").read_text() == before  # checked, not written yet
    edit.write()
    assert (config_dir / "local.toml").read_text() == before.replace(
        'image = "timescale/timescaledb:latest-pg15"', 'image = "timescale/timescaledb:2.14.2-pg15"'
    )
    assert load_environment("local-db", config_dir=config_dir).timescale.image == "timescale/timescaledb:2.14.2-pg15"
    edit.revert()
    assert (config_dir / "local.toml").read_text() == before


def test_image_edit_refuses_what_the_loader_refuses_and_leaves_the_file(tmp_path: Path) -> None:
    config_dir = config_copy(tmp_path)
    before = (config_dir / "prod.toml").read_text()
    with pytest.raises(ConfigError, match=r"prod images must be pinned by digest") as caught:
        image_edit("prod-db", config_dir, instance="postgres", image="postgres:15.8")
    assert str(config_dir / "prod.toml") in str(caught.value) and "nndb-config-check" not in str(caught.value)
    with pytest.raises(ConfigError, match="is not an image reference"):
        image_edit("local-db", config_dir, instance="postgres", image="not an image")
    assert (config_dir / "prod.toml").read_text() == before
    assert sorted(p.name for p in config_dir.iterdir()) == sorted(p.name for p in (REPO_ROOT / "config").glob("*.toml"))


# --- the upgrade and its rollback, with fakes ------------------------------------------------------------

OLD_ID, NEW_ID = "sha256:" + "0" * 64, "sha256:" + "a" * 64
RECORD = DataRecord(identity="7001", counts={"auth": {"auth.users": 2}})


@dataclass
class FakeInstance:
    """The container runs whatever image the last apply put there; ``answers`` says which images come up."""

    answers: set[str]
    running: str = OLD_ID
    fresh_data_for: set[str] = field(default_factory=set)
    backup_fails: bool = False
    container: str = "nexanest-local-postgres"
    events: list[str] = field(default_factory=list)

    def server_major(self) -> int:
        return 15

    def backup(self, note: Callable[[str], None]) -> list[str]:
        self.events.append("backup")
        if self.backup_fails:
            raise BackupError("pg_dump 15 not found")
        return ["20261203T000000Z-postgres-auth"]

    def record(self) -> DataRecord:
        if self.running in self.fresh_data_for:
            return DataRecord(identity="9999", counts={"auth": {"auth.users": 0}})
        return RECORD

    def wait(self, timeout_s: float) -> None:
        self.events.append(f"wait {timeout_s:g}")
        if self.running not in self.answers:
            raise ConnectionFailed(f"postgres: container {self.container} did not answer; fix the cause, then run the deploy again")

    def running_image_id(self) -> str | None:
        return self.running

    def describe(self) -> str:
        return f"container {self.container} is running"


@dataclass
class FakeApplier:
    instance: FakeInstance
    config: FakeConfig
    fails_for: set[str] = field(default_factory=set)
    description: str = "cdktf deploy local-db --auto-approve"

    def apply(self, *, wait_timeout_s: float, on_line: Callable[[str], None]) -> ApplyResult:
        image = self.config.image
        self.instance.events.append(f"apply {image}")
        on_line(f"applying {image}")
        if image in self.fails_for:
            return ApplyResult(ok=False, detail="Unable to pull image")
        self.instance.running = {"postgres:15": OLD_ID, "new:tag": NEW_ID}[image]
        return ApplyResult(ok=True, detail="")


@dataclass
class FakeConfig:
    image: str = "postgres:15"
    path: Path = Path("config/local.toml")
    writes: list[str] = field(default_factory=list)

    def write(self) -> None:
        self.image = "new:tag"
        self.writes.append("write")

    def revert(self) -> None:
        self.image = "postgres:15"
        self.writes.append("revert")


class FakeProgress:
    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.lines.append(label)
        yield

    def note(self, line: str) -> None:
        self.lines.append(line)


def run(instance: FakeInstance, *, fails_for: set[str] = frozenset()) -> tuple[FakeConfig, FakeProgress, object]:  # type: ignore[assignment]
    config = FakeConfig()
    progress = FakeProgress()
    reports: list[object] = []
    applier = FakeApplier(instance=instance, config=config, fails_for=set(fails_for))
    try:
        outcome: object = upgrade(
            plan(), instance=instance, applier=applier, config=config, wait_timeout_s=9, progress=progress, on_report=reports.append
        )
    except UpgradeError as exc:
        outcome = exc
    assert len(reports) == (1 if instance.events and not instance.backup_fails else 0)
    return config, progress, outcome


def test_an_upgrade_that_answers_on_the_same_data_stays() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID})
    config, progress, report = run(instance)
    assert report.outcome == "upgraded" and report.after == RECORD  # type: ignore[attr-defined]
    assert instance.events == ["backup", "apply new:tag", "wait 9"] and config.writes == ["write"]
    assert "  | applying new:tag" in progress.lines


def test_an_image_that_never_answers_is_rolled_back_in_one_line() -> None:
    instance = FakeInstance(answers={OLD_ID})
    config, _, error = run(instance)
    assert isinstance(error, UpgradeError) and error.exit_code == 16
    message = str(error)
    assert "\n" not in message and "fix the cause, then run the deploy again" not in message
    assert message.startswith(
        "local-db: postgres: new:tag did not come up within 9s (postgres: container nexanest-local-postgres did not answer)"
    )
    assert "rolled back: config/local.toml names postgres:15 again and it answers on the same data (system identifier 7001" in message
    assert message.endswith("backups taken first: 20261203T000000Z-postgres-auth")
    assert instance.events == ["backup", "apply new:tag", "wait 9", "apply postgres:15", "wait 9"]
    assert config.writes == ["write", "revert"] and config.image == "postgres:15" and instance.running == OLD_ID


def test_a_new_image_on_a_fresh_data_directory_is_rolled_back() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID}, fresh_data_for={NEW_ID})
    _, _, error = run(instance)
    assert isinstance(error, UpgradeError)
    assert "not the data it had: system identifier 9999, was 7001" in str(error) and "auth: auth.users had 2 rows, has none" in str(error)
    assert instance.running == OLD_ID


def test_an_apply_that_fails_is_rolled_back_with_its_line_and_the_containers_state() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID})
    _, _, error = run(instance, fails_for={"new:tag"})
    assert "(the apply failed: Unable to pull image; container nexanest-local-postgres is running)" in str(error)
    assert instance.events == ["backup", "apply new:tag", "apply postgres:15", "wait 9"]


def test_a_failed_rollback_says_what_runs_and_what_to_do() -> None:
    instance = FakeInstance(answers=set())
    config, _, error = run(instance)
    message = str(error)
    assert isinstance(error, UpgradeError) and "\n" not in message
    assert "and the rollback to postgres:15 failed too (postgres: container nexanest-local-postgres did not answer)" in message
    assert "config/local.toml names postgres:15 again and the data volume was not touched" in message
    assert config.image == "postgres:15"


def test_no_proven_backup_changes_nothing() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID}, backup_fails=True)
    config, _, error = run(instance)
    assert isinstance(error, UpgradeError)
    assert str(error) == "local-db: postgres: no proven backup, upgrade not started: pg_dump 15 not found; nothing was changed"
    assert config.writes == [] and instance.events == ["backup"]


def test_an_interrupted_apply_leaves_the_config_naming_the_previous_image() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID})
    config = FakeConfig()

    class Interrupted(FakeApplier):
        def apply(self, *, wait_timeout_s: float, on_line: Callable[[str], None]) -> ApplyResult:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upgrade(
            plan(),
            instance=instance,
            applier=Interrupted(instance=instance, config=config),
            config=config,
            wait_timeout_s=9,
            progress=FakeProgress(),
        )
    assert config.writes == ["write", "revert"] and config.image == "postgres:15"


def test_a_major_plan_is_not_run_by_the_minor_path() -> None:
    instance = FakeInstance(answers={OLD_ID, NEW_ID})
    config = FakeConfig()
    with pytest.raises(UpgradeError, match="a major upgrade goes through its path"):
        upgrade(
            plan(new_major=16, path="dump-restore"),
            instance=instance,
            applier=FakeApplier(instance=instance, config=config),
            config=config,
            wait_timeout_s=9,
            progress=FakeProgress(),
        )
    assert instance.events == [] and config.writes == []


# --- the dump-and-restore path, with fakes ---------------------------------------------------------------

MOUNTS = [
    {"Type": "volume", "Name": "nexanest-local-postgres-data", "Destination": "/var/lib/postgresql/data"},
    {"Type": "bind", "Source": "/etc/x", "Destination": "/etc/x"},
]


def test_the_data_directory_is_pgdata_below_the_named_volume() -> None:
    found = data_directory_of(MOUNTS, ["PGDATA=/var/lib/postgresql/data/pgdata", "LANG=C"], "c")
    assert found == DataDirectory(
        volume="nexanest-local-postgres-data", mount="/var/lib/postgresql/data", pgdata="/var/lib/postgresql/data/pgdata"
    )
    assert found.aside(15, "20261203T060000Z") == "/var/lib/postgresql/data/pgdata-15-20261203T060000Z"
    for env in (["PGDATA=/var/lib/postgresql/data"], [], ["PGDATA=/srv/pg"]):  # the volume's root, or no volume under it
        with pytest.raises(UpgradeError, match="cannot be kept beside the new one; refused, nothing was changed"):
            data_directory_of(MOUNTS, env, "c")


def test_after_a_restore_every_table_has_exactly_its_rows() -> None:
    before = DataRecord(identity="7001", counts={"auth": {"auth.users": 3, "auth.sessions": 0}})
    assert compare_restored(before, DataRecord(identity="8002", counts={"auth": {"auth.users": 3, "auth.sessions": 0}})) == []
    assert compare_restored(before, DataRecord(identity="8002", counts={"auth": {"auth.users": 2, "auth.sessions": 1}})) == [
        "auth: auth.users has 2 rows, the backup had 3",
        "auth: auth.sessions has 1 rows, the backup had 0",
    ]


@dataclass
class FakeMajorInstance(FakeInstance):
    """Data directories on a fake volume: which one the container sees, and which image runs."""

    dirs: dict[str, str] = field(default_factory=lambda: {"/d/pgdata": "old cluster"})
    helper_fails: bool = False
    restored: bool = False

    def data_directory(self) -> DataDirectory:
        return DataDirectory(volume="v", mount="/d", pgdata="/d/pgdata")

    def stop_writes(self) -> list[str]:
        self.events.append("logins off")
        return ["auth_app"]

    def allow_writes(self, roles: list[str]) -> None:
        self.events.append(f"logins on {roles}")

    def stop_container(self) -> None:
        self.events.append("stop")

    def start_container(self) -> None:
        self.events.append("start")

    def run_helper(self, image: str, directory: DataDirectory, script: str, *args: str) -> None:
        self.events.append(f"helper {image[:10]} {'aside' if 'test ! -e' in script else 'back'}")
        if self.helper_fails:
            raise UpgradeError("a helper container on v failed (mv: permission denied)")
        current, aside = args
        if "test ! -e" in script:
            self.dirs[aside] = self.dirs.pop(current)
        else:
            self.dirs.pop(current, None)
            self.dirs[current] = self.dirs.pop(aside)

    def record(self) -> DataRecord:
        cluster = self.dirs.get("/d/pgdata", "fresh")
        if cluster == "old cluster":
            return RECORD
        return DataRecord(identity="8002", counts={"auth": {"auth.users": 2 if self.restored else 0}})

    def wait(self, timeout_s: float) -> None:
        super().wait(timeout_s)
        self.dirs.setdefault("/d/pgdata", "fresh")  # initdb on an empty directory

    def restore(self, backups: list[str], note: Callable[[str], None]) -> None:
        self.events.append(f"restore {backups}")
        self.restored = True


def run_major(instance: FakeMajorInstance) -> tuple[FakeConfig, object]:
    config = FakeConfig()
    applier = FakeApplier(instance=instance, config=config)
    try:
        outcome: object = dump_restore(
            plan(new_major=16, path="dump-restore"),
            instance=instance,
            applier=applier,
            config=config,
            wait_timeout_s=9,
            progress=FakeProgress(),
            now=lambda: datetime(2026, 12, 3, 6, 0, tzinfo=UTC),
        )
    except UpgradeError as exc:
        outcome = exc
    return config, outcome


def test_dump_restore_moves_the_old_directory_aside_and_restores_every_row() -> None:
    instance = FakeMajorInstance(answers={OLD_ID, NEW_ID})
    config, outcome = run_major(instance)
    report, directory, aside = outcome  # type: ignore[misc]
    assert report.outcome == "upgraded" and directory.volume == "v" and aside == "/d/pgdata-15-20261203T060000Z"
    assert instance.dirs == {aside: "old cluster", "/d/pgdata": "fresh"}
    assert instance.events == [
        "logins off",
        "backup",
        "stop",
        f"helper {OLD_ID[:10]} aside",
        "apply new:tag",
        "wait 9",
        "restore ['20261203T000000Z-postgres-auth']",
    ]
    assert config.writes == ["write"]


def test_dump_restore_that_fails_puts_the_old_directory_and_image_back_and_the_logins_on() -> None:
    instance = FakeMajorInstance(answers={OLD_ID})
    config, error = run_major(instance)
    assert isinstance(error, UpgradeError) and "\n" not in str(error)
    assert str(error).startswith("local-db: postgres: new:tag (PostgreSQL 16) did not take the data (postgres: container")
    assert "rolled back: config/local.toml names postgres:15 again and it answers on its old data directory (system identifier 7001" in str(
        error
    )
    assert instance.dirs == {"/d/pgdata": "old cluster"} and instance.running == OLD_ID
    assert instance.events[-5:] == ["stop", f"helper {OLD_ID[:10]} back", "apply postgres:15", "wait 9", "logins on ['auth_app']"]
    assert config.writes == ["write", "revert"]


def test_dump_restore_without_a_proven_backup_gives_the_logins_back() -> None:
    instance = FakeMajorInstance(answers={OLD_ID, NEW_ID}, backup_fails=True)
    config, error = run_major(instance)
    assert str(error) == (
        "local-db: postgres: no proven backup, upgrade not started: pg_dump 15 not found; the logins are back, nothing was changed"
    )
    assert instance.events == ["logins off", "backup", "logins on ['auth_app']"] and config.writes == []


def test_dump_restore_whose_move_fails_starts_the_old_container_again() -> None:
    instance = FakeMajorInstance(answers={OLD_ID, NEW_ID}, helper_fails=True)
    config, error = run_major(instance)
    assert "a helper container on v failed (mv: permission denied); started it again with its data, the logins are back" in str(error)
    assert (
        instance.events[-2:] == ["start", "logins on ['auth_app']"]
        and config.writes == []
        and instance.dirs == {"/d/pgdata": "old cluster"}
    )
