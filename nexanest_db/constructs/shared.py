"""Value types the container constructs share (the skeleton that turns them into a container: ``database_container``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cdktf import TerraformLocal, TerraformStack
from cdktf_cdktf_provider_docker.container import ContainerHealthcheck
from constructs import Construct

MANAGED_BY = "nexanest-db"
# Docker's default CFS period; `docker run --cpus N` sets the same limit as quota N x period.
CPU_PERIOD_US = 100_000
# The CPU limit as a label: kreuzwerker/docker 3.6.2 plans a change of cpu_quota as an in-place update
# but its update function never sends it, so the limit would silently stay. Labels force a
# replacement, which applies the new limit (see docs/deploy.md, "Provider").
CPU_LIMIT_LABEL = "com.nexanest.cpus"
_ABSOLUTE_PATH = re.compile(r"^/[^\0]*$")


@dataclass(frozen=True, kw_only=True)
class FileUpload:
    """A file placed into the container at creation; a change of ``content`` replaces the container.

    ``content`` may be a Terraform token (e.g. a sensitive secret reference).
    """

    path: str
    content: str
    permissions: str = "0444"

    def __post_init__(self) -> None:
        if not _ABSOLUTE_PATH.match(self.path):
            raise ValueError(f"upload path must be absolute, got {self.path!r}")
        if not re.fullmatch(r"0[0-7]{3}", self.permissions):
            raise ValueError(f"upload permissions must be octal like 0444, got {self.permissions!r}")


@dataclass(frozen=True, kw_only=True)
class PublishedPort:
    container_port: int
    host_port: int
    bind_address: str

    def __post_init__(self) -> None:
        for port in (self.container_port, self.host_port):
            if not 1 <= port <= 65535:
                raise ValueError(f"port out of range: {port}")


@dataclass(frozen=True, kw_only=True)
class ContainerLimits:
    memory_mb: int
    cpus: float
    restart: str

    def __post_init__(self) -> None:
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64, got {self.memory_mb}")
        if self.cpus < 0.01:
            raise ValueError(f"cpus must be at least 0.01 (Docker's smallest CPU quota is 1 ms per 100 ms), got {self.cpus}")
        if self.restart not in {"no", "on-failure", "always", "unless-stopped"}:
            raise ValueError(f"unknown restart policy {self.restart!r}")

    @property
    def cpu_quota_us(self) -> int:
        """CFS quota per ``CPU_PERIOD_US``: the limit ``docker run --cpus`` would set."""
        return round(self.cpus * CPU_PERIOD_US)

    @property
    def memory_swap_mb(self) -> int:
        """Memory plus swap, stated explicitly: with only ``memory`` Docker records twice that, which
        the provider reads back as a change on every plan. Twice the memory is Docker's own default."""
        return 2 * self.memory_mb


@dataclass(frozen=True, kw_only=True)
class HealthPolicy:
    """ADR-015 health check timings (steady state; a deploy waits with ``nndb wait-ready``, not with these)."""

    interval_s: int
    timeout_s: int
    retries: int
    start_period_s: int

    def __post_init__(self) -> None:
        if min(self.interval_s, self.timeout_s, self.retries) < 1 or self.start_period_s < 0:
            raise ValueError("health check timings must be positive")

    def healthcheck(self, command: str) -> ContainerHealthcheck:
        return ContainerHealthcheck(
            test=["CMD-SHELL", command],
            interval=f"{self.interval_s}s",
            timeout=f"{self.timeout_s}s",
            retries=self.retries,
            start_period=f"{self.start_period_s}s",
        )


def standard_labels(*, environment: str, service: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Labels every resource carries (ADR audit trail): environment, service, managed-by."""
    return {
        **extra,
        "com.nexanest.environment": environment,
        "com.nexanest.service": service,
        "com.nexanest.managed-by": MANAGED_BY,
    }


def key_owner_entrypoint(*, user: str, uploaded_key: str, key_path: str) -> list[str]:
    """An entrypoint that gives ``user`` a 0600 copy of a TLS key, then runs the image's own entrypoint.

    Uploads are root-owned, and both PostgreSQL and Redis run as an unprivileged user that must own
    its key; POSIX sh and ``install`` exist in the Debian and Alpine official images alike.
    """
    script = f'set -e; install -m 0600 -o {user} -g {user} {uploaded_key} {key_path}; exec docker-entrypoint.sh "$@"'
    return ["/bin/sh", "-c", script, "nndb-tls-entrypoint"]


def shared_text(scope: Construct, name: str, content: str) -> str:
    """``content`` as a reference to a stack-level Terraform local named ``name``, created on first use.

    For a file uploaded into several containers (the first-start script, pg_hba.conf): its text is
    then written once in ``cdk.tf.json``, so a reviewer reads one copy and a change shows once.
    """
    stack = TerraformStack.of(scope)
    existing = stack.node.try_find_child(name)
    if existing is None:
        local = TerraformLocal(stack, name, content)
        local.nndb_text = content  # type: ignore[attr-defined]  # what a second use of the name is checked against
        return local.as_string
    if not isinstance(existing, TerraformLocal) or getattr(existing, "nndb_text", None) != content:
        raise ValueError(f"local {name!r} already holds other text; give the shared file another name")
    return existing.as_string
