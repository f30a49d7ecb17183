"""The Docker provider pointed at an engine: the tier's (the default provider) or another, under an alias.

``alias``: a second engine of the stack (the Swarm manager of ``[swarm]``); its resources name this
provider (``provider = docker.<alias>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cdktf_cdktf_provider_docker.provider import DockerProvider
from constructs import Construct

_ENGINE_URL = re.compile(r"^(unix|tcp|ssh|npipe)://\S+$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, kw_only=True)
class DockerEngineProps:
    host: str
    ssh_opts: tuple[str, ...] = field(default_factory=tuple)
    # A provider alias (another engine than the stack's: a replica host); its resources name it as ``provider``.
    alias: str | None = None

    def __post_init__(self) -> None:
        if self.alias is not None and not _ALIAS.match(self.alias):
            raise ValueError(f"provider alias must be lowercase letters, digits, '_' or '-', got {self.alias!r}")
        if not _ENGINE_URL.match(self.host):
            raise ValueError(f"docker host must be a unix://, tcp:// or ssh:// URL, got {self.host!r}")
        if self.ssh_opts and not self.host.startswith("ssh://"):
            raise ValueError("ssh_opts only apply to an ssh:// docker host")


class DockerEngine(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DockerEngineProps) -> None:
        super().__init__(scope, id)
        self.host = props.host
        self.provider = DockerProvider(self, "docker", host=props.host, ssh_opts=list(props.ssh_opts) or None, alias=props.alias)
