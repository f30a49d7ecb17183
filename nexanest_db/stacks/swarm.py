"""Wiring of the Swarm hand-off (``[swarm]``): the published secrets of ``nexanest_db.swarm`` as a ``SwarmSecrets``."""

from __future__ import annotations

from constructs import Construct

from nexanest_db.config import EnvironmentConfig
from nexanest_db.constructs import DeploySecrets, DockerEngineProps, SwarmSecret, SwarmSecrets, SwarmSecretsProps
from nexanest_db.constructs.shared import standard_labels
from nexanest_db.swarm import CREDENTIAL_LABEL, GENERATION_LABEL, STACK_LABEL, published_secrets


def add_swarm_secrets(scope: Construct, config: EnvironmentConfig, secrets: DeploySecrets) -> SwarmSecrets | None:
    """The stack's Docker secrets on the Swarm manager, or ``None`` when the environment has no ``[swarm]``."""
    swarm = config.swarm
    if swarm is None:
        return None
    if swarm.docker.ssh is not None:
        engine = DockerEngineProps(host=swarm.docker.ssh.url(), ssh_opts=tuple(swarm.docker.ssh.opts), alias=swarm.provider_alias)
    else:
        engine = DockerEngineProps(host=swarm.docker.host or "", alias=swarm.provider_alias)
    published = published_secrets(config)
    current: dict[str, dict[str, str]] = {}
    for entry in published:
        if entry.current:
            current.setdefault(entry.service, {})[entry.credential] = entry.name
    return SwarmSecrets(
        scope,
        "swarm",
        props=SwarmSecretsProps(
            engine=engine,
            secrets=[
                SwarmSecret(
                    id=f"{entry.service}-{entry.credential}-v{entry.generation}",
                    name=entry.name,
                    value=secrets.sensitive(entry.secret),
                    labels={
                        **standard_labels(environment=config.environment, service=entry.service, extra=config.labels),
                        STACK_LABEL: config.stack,
                        CREDENTIAL_LABEL: entry.credential,
                        GENERATION_LABEL: str(entry.generation),
                    },
                    keep_content=not entry.current,
                )
                for entry in published
            ],
            current_names=current,
        ),
    )
