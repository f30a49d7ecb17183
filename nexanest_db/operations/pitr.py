"""Point-in-time recovery with barman (Debian 12's 3.4): streamed WAL and base backups kept off the database host.

Why barman (docs/backups.md): it runs entirely outside the server — ``pg_basebackup`` and
``pg_receivewal`` over the replication protocol — so nothing is added to the official postgres and
timescaledb images; it keeps a WAL catalogue, applies a recovery-window retention that always
keeps the base backup the window's start needs, and its ``recover`` writes the recovery settings.

The repository is ``<backup dir>/<stack>/pitr`` on the machine that runs nndb (the backup host):
``barman.conf`` (written by nndb from the environment's config on every run), one barman server per
PostgreSQL instance (``postgres``, ``timescale``), and the private ``.nndb/pgpass`` (0600 in a 0700
directory) with the replication role's password from the secrets layer, rewritten on every run so
a rotated secret takes effect; barman hands it to its children as ``PGPASSFILE`` (never argv).

``barman cron`` (``nndb backup pitr cron``, scheduled every minute: docs/backups.md) keeps
``receive-wal`` running, files incoming WAL and applies the retention.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from nexanest_db import scram
from nexanest_db.context import HookContext
from nexanest_db.errors import PitrError
from nexanest_db.roles import REPLICATION_ROLE, REPLICATION_SECRETS, SUPERUSER_SECRETS, postgres_instances
from nexanest_db.sqlfiles import StepValues, load_step_file, run_steps

BARMAN = "barman"
BARMAN_VERSION = "3.4"  # Debian 12's barman 3.4.0-1, pinned in scripts/setup.sh
SLOT_NAME = "nndb_barman"
_BARMAN_ENV = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME"})
ROLE_FILE = "init/04-replication-role.sql"
PG_BINDIR = "/usr/lib/postgresql/{major}/bin"


@dataclass(frozen=True, kw_only=True)
class Repository:
    """One environment's PITR repository: the barman home and its configuration."""

    home: Path
    stack: str
    environ: Mapping[str, str] = field(default_factory=dict)  # barman's environment, from the edge (PATH, HOME, locale)

    @classmethod
    def for_context(cls, context: HookContext, *, environ: Mapping[str, str]) -> Repository:
        """``environ``: the process environment as the command resolved it; barman gets its basics only (no secret)."""
        keep = {k: v for k, v in environ.items() if k in _BARMAN_ENV or k.startswith("LC_")}
        return cls(home=context.backup_dir / "pitr", stack=context.stack, environ=keep)

    @property
    def config_file(self) -> Path:
        return self.home / "barman.conf"

    @property
    def private_dir(self) -> Path:
        return self.home / ".nndb"

    @property
    def passfile(self) -> Path:
        return self.private_dir / "pgpass"


def _libpq_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def write_config(context: HookContext, repo: Repository) -> None:
    """barman.conf for the stack and the passfile (replication passwords from the secrets layer)."""
    if shutil.which(BARMAN) is None:
        raise PitrError(f"barman not found; install Debian's barman {BARMAN_VERSION} (scripts/setup.sh does: apt-get install barman)")
    repo.home.mkdir(parents=True, exist_ok=True)
    repo.private_dir.mkdir(mode=0o700, exist_ok=True)
    repo.private_dir.chmod(0o700)
    policy = context.config.backup
    lines = [
        "; Written by nndb (nexanest_db/operations/pitr.py) on every run: edit config/<env>.toml instead.",
        "[barman]",
        f"barman_home = {repo.home}",
        f"barman_user = {getpass.getuser()}",
        f"log_file = {repo.home / 'barman.log'}",
        "log_level = INFO",
        "compression = gzip",
        "minimum_redundancy = 1",
        f"retention_policy = RECOVERY WINDOW OF {policy.retention_days} DAYS",
        "wal_retention_policy = main",
        "retention_policy_mode = auto",
        "",
    ]
    passfile_lines = []
    tls = context.client_tls()
    for instance in postgres_instances(context.config):
        endpoint = context.endpoints.for_instance(instance)
        major = context.postgres.server_version(instance) // 10000
        common = f"host={endpoint.host} port={endpoint.port} user={REPLICATION_ROLE} application_name=nndb-barman-{instance}"
        if tls is not None:
            common += f" sslmode={tls.sslmode} sslrootcert={_libpq_value(str(tls.rootcert))}"
        lines += [
            f"[{instance}]",
            f"description = {context.stack} {instance}",
            f"conninfo = {common} dbname=postgres",
            f"streaming_conninfo = {common}",
            "backup_method = postgres",
            "streaming_archiver = on",
            "archiver = off",
            f"slot_name = {SLOT_NAME}",
            f"path_prefix = {PG_BINDIR.format(major=major)}",
            "",
        ]
        password = context.password(REPLICATION_SECRETS[instance])
        passfile_lines.append(f"{_pgpass_field(endpoint.host)}:{endpoint.port}:*:{REPLICATION_ROLE}:{_pgpass_field(password)}")
    repo.config_file.write_text("\n".join(lines), encoding="utf-8")
    partial = repo.passfile.with_name(".pgpass.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(passfile_lines) + "\n")
    os.replace(partial, repo.passfile)


def ensure_replication_roles(context: HookContext) -> list[str]:
    """The replication role on every instance (``sql/init/04-replication-role.sql``); titles of the steps that ran."""
    steps = load_step_file(context.paths.sql_dir, ROLE_FILE)
    changed = []
    for instance in postgres_instances(context.config):
        conn = context.pg(instance)
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (REPLICATION_ROLE,)).fetchone()
        verifier = scram.current_verifier(context.password(REPLICATION_SECRETS[instance]), row[0] if row else None)
        values = StepValues(identifiers={"replication_role": REPLICATION_ROLE}, literals={"replication_password": verifier})
        changed += [f"{instance}: {title}" for title in run_steps(conn, steps, values)]
    return changed


def barman(repo: Repository, *args: str, as_json: bool = False, timeout_s: float = 600) -> str:
    """Run barman on the repository's config; its stdout, or one PitrError line with barman's own reason."""
    argv = [BARMAN, "-c", str(repo.config_file)] + (["-f", "json"] if as_json else ["-q"])  # -q would silence the JSON too
    env = dict(repo.environ)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PGPASSFILE"] = str(repo.passfile)
    try:
        result = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise PitrError(f"barman {' '.join(args)}: no answer within {timeout_s:g}s; see {repo.home / 'barman.log'}") from None
    if result.returncode != 0:
        text = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = next((line for line in text if "ERROR" in line or "FAILED" in line), text[0] if text else f"exit code {result.returncode}")
        raise PitrError(f"barman {' '.join(args)}: {reason.strip()}; see {repo.home / 'barman.log'}")
    return result.stdout


def setup(context: HookContext, repo: Repository) -> list[str]:
    """Role, config, replication slot and a first ``barman cron`` (starts receive-wal); one line per thing done."""
    done = ensure_replication_roles(context)
    write_config(context, repo)
    for instance in postgres_instances(context.config):
        row = context.pg(instance).execute("SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %s)", (SLOT_NAME,)).fetchone()
        if not (row and row[0]):
            barman(repo, "receive-wal", "--create-slot", instance)
            done.append(f"{instance}: replication slot {SLOT_NAME} created")
    barman(repo, "cron")
    for instance in postgres_instances(context.config):
        wait_streaming(context, instance)
        switch_wal(context, repo, instance)  # barman's check wants one WAL file filed before the first base backup
        done.append(f"{instance}: WAL streaming into {repo.home / instance}")
    return done


def cron(repo: Repository) -> None:
    barman(repo, "cron")


def switch_wal(context: HookContext, repo: Repository, instance: str, timeout_s: float = 60) -> None:
    """Close the current WAL segment and wait until the repository has filed it (what 'latest' can reach).

    As the superuser (barman 3.4's ``switch-wal --force`` wants its own connection to be one):
    CHECKPOINT, so there is always something to switch, then ``pg_switch_wal()``.
    """
    conn = context.pg(instance)
    conn.execute("CHECKPOINT")
    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    wal = str(row[0]) if row else ""
    xlogdb = repo.home / instance / "wals" / "xlog.db"
    deadline = time.monotonic() + timeout_s
    while True:
        barman(repo, "archive-wal", instance)
        if wal and _filed_up_to(xlogdb) >= wal:
            return
        if time.monotonic() > deadline:
            raise PitrError(
                f"{instance}: WAL segment {wal} did not reach the repository within {timeout_s:g}s; "
                f"is receive-wal running? (nndb backup pitr cron {repo.stack}; see {repo.home / 'barman.log'})"
            )
        time.sleep(0.3)


def _filed_up_to(xlogdb: Path) -> str:
    """The newest WAL segment name in barman's catalogue (``xlog.db``: name, size, time, compression per line)."""
    if not xlogdb.is_file():
        return ""
    names = [line.split("\t", 1)[0] for line in xlogdb.read_text(encoding="utf-8", errors="replace").splitlines()]
    return max((n for n in names if len(n) == 24), default="")


def wait_streaming(context: HookContext, instance: str, timeout_s: float = 30) -> None:
    """Until the repository's pg_receivewal streams from ``instance`` (barman cron starts it in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        row = (
            context.pg(instance)
            .execute("SELECT count(*) FROM pg_stat_replication WHERE usename = %s AND state = 'streaming'", (REPLICATION_ROLE,))
            .fetchone()
        )
        if row and row[0]:
            return
        if time.monotonic() > deadline:
            raise PitrError(
                f"{instance}: the repository's receive-wal is not streaming after {timeout_s:g}s; see {context.backup_dir / 'pitr' / 'barman.log'}"
            )
        time.sleep(0.2)


def base_backup(context: HookContext, repo: Repository, instance: str, timeout_s: float = 60) -> str:
    """A base backup of ``instance``, complete with the WAL that makes it consistent; its backup ID.

    Returns only once barman calls it DONE: right after the WAL is filed it can still say
    WAITING_FOR_WALS (barman re-checks it in ``cron``/``check-backup``), and a recovery needs a DONE one.
    """
    barman(repo, "backup", instance)
    switch_wal(context, repo, instance)
    backup_id = backups(repo, instance)[-1].backup_id
    deadline = time.monotonic() + timeout_s
    while True:
        status = next((b.status for b in backups(repo, instance) if b.backup_id == backup_id), "missing")
        if status == "DONE":
            return backup_id
        if status != "WAITING_FOR_WALS" or time.monotonic() > deadline:
            raise PitrError(
                f"{instance}: base backup {backup_id} is {status} after {timeout_s:g}s, not DONE; see {repo.home / 'barman.log'}"
            )
        barman(repo, "archive-wal", instance)
        barman(repo, "check-backup", instance, backup_id)
        time.sleep(0.3)


@dataclass(frozen=True, kw_only=True)
class BaseBackup:
    backup_id: str  # barman's: the start time, YYYYMMDDTHHMMSS (sorts by time)
    status: str
    end_time: datetime | None
    size: str


def backups(repo: Repository, instance: str) -> list[BaseBackup]:
    """The instance's base backups in the repository, oldest first (``barman list-backups``)."""
    try:
        listing = json.loads(barman(repo, "list-backups", instance, as_json=True) or "{}")
    except ValueError:
        raise PitrError(f"barman list-backups {instance}: unreadable output; see {repo.home / 'barman.log'}") from None
    found = []
    for entry in listing.get(instance, []):
        stamp = entry.get("end_time_timestamp")
        found.append(
            BaseBackup(
                backup_id=str(entry["backup_id"]),
                status=str(entry.get("status", "?")),
                end_time=datetime.fromtimestamp(float(stamp), UTC) if stamp else None,
                size=str(entry.get("size", "")),
            )
        )
    return sorted(found, key=lambda b: b.backup_id)


@dataclass(frozen=True, kw_only=True)
class Recovered:
    instance: str
    backup_id: str
    target: datetime | None
    data_dir: Path
    port: int | None


def choose_base(found: list[BaseBackup], instance: str, target: datetime | None, now: datetime) -> BaseBackup:
    """The newest finished base backup that ended before ``target`` (latest: the newest), or one clear PitrError."""
    done = [b for b in found if b.status == "DONE" and b.end_time is not None]
    if not done:
        raise PitrError(f"{instance}: no finished base backup in the repository; take one: nndb backup pitr base <stack>")
    if target is None:
        return done[-1]
    earliest = min(b.end_time for b in done if b.end_time is not None)
    if target > now:
        raise PitrError(f"{instance}: recovery target {target.isoformat()} is in the future; the latest point is now ({now.isoformat()})")
    reachable = [b for b in done if b.end_time is not None and b.end_time <= target]
    if not reachable:
        raise PitrError(
            f"{instance}: recovery target {target.isoformat()} is outside the retained window: the earliest reachable point is "
            f"{earliest.isoformat()} (end of base backup {done[0].backup_id}); pick a later time"
        )
    return reachable[-1]


def recover(context: HookContext, repo: Repository, instance: str, *, target: datetime | None, destination: Path, start: bool) -> Recovered:
    """Recover ``instance`` as of ``target`` (None: the latest WAL) into the empty directory ``destination``.

    ``start``: run it as a scratch instance on a free 127.0.0.1 port (promoted once the target is
    reached), for inspection; otherwise the directory is the data of a new volume (docs/runbooks/restore.md).
    """
    if destination.exists() and any(destination.iterdir()):
        raise PitrError(f"{destination}: not empty; recover into a new directory")
    write_config(context, repo)
    with _quietly():
        switch_wal(context, repo, instance, timeout_s=30)  # the server's newest WAL into the repository first (best effort: it may be down)
    now = datetime.now(UTC)
    base = choose_base(backups(repo, instance), instance, target, now)
    destination.mkdir(parents=True, exist_ok=True)
    args = ["recover", "--target-action", "promote"] if target is not None else ["recover"]
    if target is not None:
        args += ["--target-time", target.isoformat()]
    try:
        barman(repo, *args, instance, base.backup_id, str(destination), timeout_s=3600)
    except PitrError:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    port = None
    if start:
        major = int((destination / "PG_VERSION").read_text().strip().split(".")[0])  # the instance itself may be down
        port = start_scratch(destination, major=major)
        _wait_promoted(context, instance, port)
    return Recovered(instance=instance, backup_id=base.backup_id, target=target, data_dir=destination, port=port)


@contextmanager
def _quietly() -> Iterator[None]:
    with suppress(PitrError):
        yield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: the scratch instance then runs as the ``postgres`` OS user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or next((p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).is_file()), "runuser")
    return [runuser, "-u", "postgres", "--"]


def start_scratch(data_dir: Path, *, major: int) -> int:
    """Start PostgreSQL on the recovered ``data_dir`` (127.0.0.1, a free port, no archiving); its port."""
    pg_ctl = Path(PG_BINDIR.format(major=major)) / "pg_ctl"
    if not pg_ctl.is_file():
        raise PitrError(f"{pg_ctl}: not found; install Debian's postgresql-{major} to run a scratch instance")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(data_dir)], check=True)
    data_dir.chmod(0o700)
    (data_dir / "standby.signal").unlink(missing_ok=True)
    port = _free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir} -c archive_mode=off -c fsync=off"
    log = data_dir / "scratch.log"
    result = subprocess.run(
        [*_as_server_user(), str(pg_ctl), "-D", str(data_dir), "-l", str(log), "-o", options, "-w", "-t", "120", "start"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else [result.stderr.strip()]
        raise PitrError(f"scratch instance on {data_dir} did not start: {' '.join(tail)}")
    return port


def stop_scratch(data_dir: Path, *, major: int = 15) -> None:
    pg_ctl = Path(PG_BINDIR.format(major=major)) / "pg_ctl"
    subprocess.run([*_as_server_user(), str(pg_ctl), "-D", str(data_dir), "-m", "fast", "-w", "stop"], capture_output=True, check=False)


def _wait_promoted(context: HookContext, instance: str, port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=port,
                dbname="postgres",
                user=context.postgres.superuser(instance),
                password=context.password(SUPERUSER_SECRETS[instance]),
                connect_timeout=5,
            ) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row and not row[0]:
                    return
                last = "still in recovery"
        except psycopg.OperationalError as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        time.sleep(0.2)
    raise PitrError(f"scratch instance on 127.0.0.1:{port} not promoted within {timeout_s:g}s ({last})")
