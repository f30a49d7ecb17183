"""The Docker engine a stack targets, as the deployer's `docker` CLI reaches it (for diagnostics only).

Terraform's Docker provider reaches the engine through ``docker.host`` (a local ``unix://`` socket)
or ``ssh://user@host`` with ``docker.ssh.opts``: for ssh it runs ``ssh <opts> -l <user> -p <port>
<host> -- docker system dial-stdio`` (Docker's connection helper). nndb reads container state and
logs the same way, so a message about a container comes from the very engine the stack deployed to:
locally ``docker -H <host> ...``, remotely ``ssh <opts> ... -- docker ...`` (which needs ``docker``
on the remote host, as the provider does). Nothing here changes the engine.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass

from nexanest_db.config import DockerConfig, EnvironmentConfig


@dataclass(frozen=True, kw_only=True)
class ContainerState:
    status: str  # created, running, restarting, exited, dead, paused, or "missing"
    exit_code: int = 0
    restart_count: int = 0
    error: str = ""
    health: str | None = None

    def describe(self) -> str:
        if self.status == "missing":
            return "missing (no such container on the engine)"
        parts = [self.status]
        if self.status in {"exited", "restarting", "dead"}:
            parts.append(f"exit code {self.exit_code}")
        if self.restart_count:
            parts.append(f"{self.restart_count} restart{'s' if self.restart_count != 1 else ''}")
        if self.health:
            parts.append(f"health {self.health}")
        if self.error:
            parts.append(self.error)
        return f"{parts[0]} ({', '.join(parts[1:])})" if len(parts) > 1 else parts[0]

    @property
    def crashed(self) -> bool:
        """Not coming up by itself: stopped, dead, or restarting over and over."""
        return self.status in {"exited", "dead", "missing"} or (self.status == "restarting" and self.restart_count >= 2)


@dataclass(frozen=True, kw_only=True)
class Engine:
    """``docker`` commands against the stack's engine: ``argv`` is the prefix before the docker subcommand."""

    argv: tuple[str, ...]
    remote: bool
    description: str
    timeout_s: float = 20.0

    @classmethod
    def for_config(cls, config: EnvironmentConfig, *, ssh_host_override: str | None = None) -> Engine:
        return cls.for_docker(config.docker, ssh_host_override=ssh_host_override)

    @classmethod
    def for_docker(cls, docker: DockerConfig, *, ssh_host_override: str | None = None) -> Engine:
        """The engine of one ``[docker]`` table: the stack's, or a replica's (``[replication.*.replicas.*.docker]``)."""
        ssh = docker.ssh
        if ssh is None:
            host = docker.host or "unix:///var/run/docker.sock"
            return cls(argv=("docker", "-H", host), remote=False, description=host)
        host = ssh_host_override or ssh.host
        # As Docker's connection helper does: -p only for a port in the URL, so an ssh config (-F) can set it.
        port = ["-p", str(ssh.port)] if ssh.port != 22 else []
        argv = ["ssh", *ssh.opts, "-o", "BatchMode=yes", "-l", ssh.user, *port, host, "--", "docker"]
        return cls(argv=tuple(argv), remote=True, description=ssh.url(ssh_host_override))

    def _command(self, *args: str) -> list[str]:
        if self.remote:
            # ssh hands the remote shell one string: quote each argument.
            return [*self.argv[:-1], shlex.join([self.argv[-1], *args])]
        return [*self.argv, *args]

    def run(self, *args: str, merge_output: bool = False) -> subprocess.CompletedProcess[str] | None:
        """The command's result, or ``None`` when the CLI (docker, ssh) is not installed or hangs.

        ``merge_output``: stderr into stdout, in the order written (``docker logs`` replays both streams).
        """
        stderr = subprocess.STDOUT if merge_output else subprocess.PIPE
        try:
            return subprocess.run(
                self._command(*args),
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                errors="replace",
                timeout=self.timeout_s,
                check=False,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None

    def state(self, name: str) -> ContainerState | None:
        """The container's state, ``status="missing"`` when the engine has none by that name, ``None`` if unknown."""
        result = self.run("container", "inspect", "--format", "{{json .State}} {{.RestartCount}}", name)
        if result is None:
            return None
        if result.returncode != 0:
            return ContainerState(status="missing") if "No such" in result.stderr else None
        raw, _, restarts = result.stdout.strip().rpartition(" ")
        try:
            state = json.loads(raw)
        except ValueError:
            return None
        return ContainerState(
            status=str(state.get("Status", "unknown")),
            exit_code=int(state.get("ExitCode") or 0),
            restart_count=int(restarts) if restarts.isdigit() else 0,
            error=str(state.get("Error") or ""),
            health=(state.get("Health") or {}).get("Status"),
        )

    def log_tail(self, name: str, lines: int = 5) -> list[str]:
        """The container's last non-empty log lines (stdout and stderr), oldest first; empty when unavailable."""
        result = self.run("logs", "--tail", str(max(lines * 4, 20)), name, merge_output=True)
        if result is None or result.returncode != 0:
            return []
        return [line.strip() for line in result.stdout.splitlines() if line.strip()][-lines:]
