"""A throwaway copy of the project that the deploy tests run `cdktf deploy|diff|destroy <stack>` in, as a user would.

Each copy gets a unique name prefix (containers, volumes, network), free published ports (through the
ADR variables ``*_HOST``/``*_PORT``, which the stack uses for the published ports too; or, with
``ports_in_config``, in the copy's config, where ``nndb failover`` can move the endpoint), its config
pointed at the stand-in images (tests/support/standins.py) and one distinct password per credential.
``teardown`` removes only what carries the copy's prefix, whatever happened. Every cdktf call's wall
time is kept for the summary that scripts/test.sh prints.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.toolchain import Toolchain
from tests.support.e2e_run import record_phases, teardown
from tests.support.local_servers import free_port
from tests.support.metrics import SampleNeverSeen, wait_for_sample
from tests.support.project import copy_project
from tests.support.standins import point_at_standins

INSTANCES = ("postgres", "timescale", "redis")
EXPORTERS = tuple(f"{instance}-exporter" for instance in INSTANCES)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def passwords(tag: str) -> dict[str, str]:
    """One distinct password per credential the stack has (nexanest_db.secrets.SECRET_SPECS), without whitespace."""
    return {spec.env_var: f"{tag.replace(' ', '-')}-{spec.name}-pw" for spec in SECRET_SPECS}


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout + stderr, ANSI sequences and cdktf's progress lines removed

    def lines(self, needle: str) -> list[str]:
        return [line.strip() for line in self.output.splitlines() if needle in line]


@dataclass
class DeployedCopy:
    root: Path
    stack: str
    prefix: str
    ports: dict[str, int]
    env: dict[str, str]
    passwords: dict[str, str]
    toolchain: Toolchain
    label: str
    host: str = "127.0.0.1"  # where the published ports answer (the config's endpoint_host)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        directory: Path,
        toolchain: Toolchain,
        *,
        stack: str = "local-db",
        label: str,
        timescale_image: str | None = None,
        keep_timescale_preload: bool = False,
        extra_toml: str = "",
        replacements: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        ports_in_config: bool = False,
    ) -> DeployedCopy:
        """``ports_in_config``: the databases' free ports go into the copy's config (``[<instance>] port``) instead of
        ``*_HOST``/``*_PORT``, which win over everything: after ``nndb failover`` the config's primary must be the endpoint.
        ``host``: the copy's endpoint_host (with ``ports_in_config``; the replacements publish there)."""
        root = copy_project(directory)
        environment = stack.removesuffix("-db")
        prefix = f"nndb-e2e-{environment}-{uuid.uuid4().hex[:8]}"
        config = root / "config" / f"{environment}.toml"
        text = config.read_text()
        text = point_at_standins(text, timescale_image=timescale_image, keep_preload=keep_timescale_preload)
        ports = {name: free_port() for name in (*INSTANCES, *EXPORTERS)}
        shipped = tomllib.loads(text)  # the shipped ports, before the replacements
        for old, new in {
            f'name_prefix = "nexanest-{environment}"': f'name_prefix = "{prefix}"',
            f'name = "nexanest-db-{environment}"': f'name = "{prefix}-net"',
            **(replacements or {}),
        }.items():
            if old not in text:
                raise AssertionError(f"config/{environment}.toml no longer contains {old!r}: update tests/support/deploy.py")
            text = text.replace(old, new)
        if ports_in_config:
            for instance in INSTANCES:  # the instance's own table: its `port = ` line
                table = re.compile(rf"^(\[{instance}\]\n(?:(?!\[).*\n)*?)port = {shipped[instance]['port']}$", re.MULTILINE)
                text, found = table.subn(rf"\g<1>port = {ports[instance]}", text, count=1)
                if not found:
                    raise AssertionError(f"config/{environment}.toml: no `port = ` line in [{instance}]: update tests/support/deploy.py")
        config.write_text(text + extra_toml)
        secret_values = passwords(label)
        env = {**toolchain.environ, **secret_values, **(extra_env or {})}
        for spec in SECRET_SPECS:  # an outer *_FILE or .env.db-style override must not win over these
            env.pop(f"{spec.env_var}_FILE", None)
        for name in ("DB_HOST", "NNDB_CONFIRM_DESTROY", "NNDB_DESTROY_WITHOUT_BACKUP", "NNDB_BACKUP_DIR"):
            env.pop(name, None)
        # No backup host here: the deploy scenarios keep their backups in the stack's own directory
        # (tests/integration/test_backup_repository.py is the off-host repository's test).
        env["NNDB_BACKUP_REPOSITORY"] = "local"
        for instance in INSTANCES:
            if ports_in_config:
                for name in (f"{instance.upper()}_HOST", f"{instance.upper()}_PORT"):
                    env.pop(name, None)
            else:
                env[f"{instance.upper()}_HOST"] = host
                env[f"{instance.upper()}_PORT"] = str(ports[instance])
            env[f"{instance.upper()}_EXPORTER_PORT"] = str(ports[f"{instance}-exporter"])
        return cls(
            root=root,
            stack=stack,
            prefix=prefix,
            ports=ports,
            env=env,
            passwords=secret_values,
            toolchain=toolchain,
            label=label,
            host=host,
        )

    # --- what a user types -------------------------------------------------------------------------

    def cdktf(self, phase: str, command: str, *, expect_failure: bool = False, env: Mapping[str, str] | None = None) -> Run:
        """``cdktf <command> <stack>`` (deploy and destroy with ``--auto-approve``), exactly as the README gives it."""
        args = [str(self.toolchain.cdktf), command, self.stack]
        if command in {"deploy", "destroy"}:
            args.append("--auto-approve")
        start = time.perf_counter()
        result = subprocess.run(args, cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=1200)
        self.timings[phase] = time.perf_counter() - start
        run = Run(returncode=result.returncode, output=clean(result.stdout + result.stderr))
        if expect_failure and run.returncode == 0:
            raise AssertionError(f"cdktf {command} {self.stack} ({phase}) succeeded, a failure was expected:\n{run.output[-4000:]}")
        if not expect_failure and run.returncode != 0:
            raise AssertionError(f"cdktf {command} {self.stack} ({phase}) exited {run.returncode}:\n{run.output[-6000:]}")
        return run

    def terraform(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The stack's own Terraform (its synthesized directory, its backend), for state surgery a test needs."""
        return subprocess.run(
            [self.toolchain.terraform, *args],
            cwd=self.root / "cdktf.out" / "stacks" / self.stack,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )

    def nndb(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nndb", *args], cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=300)

    def edit_config(self, old: str, new: str) -> None:
        config = self.root / "config" / f"{self.stack.removesuffix('-db')}.toml"
        text = config.read_text()
        if old not in text:
            raise AssertionError(f"{config.name} does not contain {old!r}")
        config.write_text(text.replace(old, new))

    # --- what is on the engine ---------------------------------------------------------------------

    def container(self, instance: str) -> str:
        return f"{self.prefix}-{instance}"

    def container_ids(self) -> dict[str, str]:
        return {instance: docker("inspect", "--format", "{{.Id}}", self.container(instance)) for instance in INSTANCES}

    def health(self, instance: str) -> str:
        return docker("inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", self.container(instance))

    def running(self, instance: str) -> bool:
        return docker("inspect", "--format", "{{.State.Running}}", self.container(instance)) == "true"

    def wait_healthy(self, timeout_s: float = 90) -> float:
        """Docker's own health check (the ADR's 30 s interval, steady state) reports healthy for all three."""
        start = time.monotonic()
        while not all(self.health(instance) == "healthy" for instance in INSTANCES):
            if time.monotonic() - start > timeout_s:
                raise AssertionError(f"not healthy after {timeout_s} s: {[(i, self.health(i)) for i in INSTANCES]}")
            time.sleep(1)
        return time.monotonic() - start

    def scrape(self, exporter: str, sample: str, timeout_s: float = 45) -> str:
        """GET /metrics of ``exporter`` (e.g. ``postgres-exporter``) until a line equals ``sample`` (``pg_up 1``)."""
        try:
            return wait_for_sample(self.ports[exporter], sample, timeout_s=timeout_s, host=self.host)
        except SampleNeverSeen as exc:
            name = self.container(exporter)
            state = docker(
                "inspect", "--format", "{{.State.Status}} exit {{.State.ExitCode}} {{json .NetworkSettings.Ports}}", name, check=False
            )
            logs = subprocess.run(["docker", "logs", "--tail", "20", name], capture_output=True, text=True, timeout=60)
            raise AssertionError(
                f"{exporter}: /metrics on {self.host}:{self.ports[exporter]} never had {sample!r} within {timeout_s:.0f} s ({exc.last}); "
                f"container {state}\n{logs.stdout}{logs.stderr}"
            ) from None

    def names_on_engine(self) -> dict[str, str]:
        return {
            kind: docker(*args, "--filter", f"name={self.prefix}", "--format", "{{.Names}}" if kind == "containers" else "{{.Name}}")
            for kind, args in (("containers", ("ps", "-a")), ("volumes", ("volume", "ls")), ("networks", ("network", "ls")))
        }

    def connect(self, instance: str, user: str, password: str, dbname: str, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.ports[instance],
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=10,
            autocommit=True,
            **kwargs,  # type: ignore[arg-type]
        )

    # --- files --------------------------------------------------------------------------------------

    def readable_by_others(self) -> list[Path]:
        """Files under the copy that a user other than the owner can read (the copy's root taken as world-traversable)."""
        found = []
        for directory, dirnames, filenames in os.walk(self.root):
            current = Path(directory)
            if current != self.root and not stat.S_IMODE(current.stat().st_mode) & 0o001:
                dirnames[:] = []  # nobody else gets past this directory
                continue
            found += [current / f for f in filenames if stat.S_IMODE((current / f).lstat().st_mode) & 0o004]
        return found

    def leaks(self) -> list[str]:
        """``file: secret name`` for every secret value in a file others can read."""
        values = {name: value.encode() for name, value in self.passwords.items()}
        problems = []
        for path in self.readable_by_others():
            try:
                content = path.read_bytes()
            except OSError:
                continue
            problems += [f"{path.relative_to(self.root)}: {name}" for name, value in values.items() if value in content]
        return problems

    # --- the end -----------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove the containers (with anonymous volumes), volumes and network carrying this copy's prefix, nothing else."""

        teardown(self.prefix)
        record_phases(self.label, self.timings)


def clean(output: str) -> str:
    """cdktf's output without colour codes, cursor movement and spinner/progress lines."""
    text = ANSI.sub("", output)
    keep = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏")) or "Stack deploying" in stripped:
            continue
        if re.fullmatch(r"\d+ Stacks? (deploying|destroying|done|waiting).*", stripped):
            continue
        keep.append(line)
    return "\n".join(keep)
