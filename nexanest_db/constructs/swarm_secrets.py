"""Docker secrets on the Swarm manager, through their own Docker provider alias (docs/topology.md#docker-swarm).

Each ``docker_secret`` gets its value as a Terraform reference (the stack's ``data "external"``
result, marked sensitive) encoded the way the provider wants it (``base64encode``): no value is in
``cdk.tf.json``. Docker secrets are immutable and the provider replaces one whose ``data`` changes,
so:

* the current generation tracks its value: a value changed without a new generation shows in the
  plan as a replacement of a secret the services use, which Docker refuses (the apply stops there);
* a kept older generation has ``ignore_changes = ["data"]``: it keeps the content it was created
  with while the value source has moved on to the next generation's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import Fn, TerraformOutput, TerraformResourceLifecycle
from cdktf_cdktf_provider_docker.secret import Secret, SecretLabels
from constructs import Construct

from nexanest_db.constructs.docker_engine import DockerEngine, DockerEngineProps

_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
_CONSTRUCT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True, kw_only=True)
class SwarmSecret:
    id: str  # construct id: docker_secret.<scope id>_<id>
    name: str  # the Docker secret's name on the manager
    value: str  # a Terraform reference to the (sensitive) value, never a value
    labels: Mapping[str, str] = field(default_factory=dict)
    keep_content: bool = False  # a kept older generation: ignore_changes = ["data"]

    def __post_init__(self) -> None:
        if not _CONSTRUCT_ID.match(self.id):
            raise ValueError(f"secret id {self.id!r} must be lower-case letters, digits, '-' and '_'")
        if not _DOCKER_NAME.match(self.name):
            raise ValueError(f"{self.name!r} is not a Docker object name (letters, digits, _ . -; at most 64)")
        if "${" not in self.value:
            # A literal here would be the value itself in cdk.tf.json.
            raise ValueError(f"{self.name}: the value must be a Terraform reference (DeploySecrets.sensitive), not a literal")


@dataclass(frozen=True, kw_only=True)
class SwarmSecretsProps:
    engine: DockerEngineProps  # the Swarm manager's engine, with the provider alias
    secrets: Sequence[SwarmSecret]
    # service -> {credential -> current secret name}: the stack output the application services' deploy reads
    current_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine.alias is None:
            raise ValueError("the Swarm manager's provider needs an alias (the stack's default provider is the database host's)")
        if not self.secrets:
            raise ValueError("SwarmSecrets needs at least one secret")
        for attribute in ("id", "name"):
            values = [getattr(s, attribute) for s in self.secrets]
            if len(set(values)) != len(values):
                raise ValueError(f"secret {attribute}s must be unique")


class SwarmSecrets(Construct):
    def __init__(self, scope: Construct, id: str, *, props: SwarmSecretsProps) -> None:
        super().__init__(scope, id)
        self.engine = DockerEngine(self, "engine", props=props.engine)
        self.secrets: dict[str, Secret] = {}
        for spec in props.secrets:
            self.secrets[spec.name] = Secret(
                self,
                spec.id,
                name=spec.name,
                data=Fn.base64encode(spec.value),
                labels=[SecretLabels(label=k, value=v) for k, v in sorted(spec.labels.items())],
                provider=self.engine.provider,
                lifecycle=TerraformResourceLifecycle(ignore_changes=["data"]) if spec.keep_content else None,
            )
        if props.current_names:
            TerraformOutput(
                self,
                "secret-names",
                value={service: dict(sorted(names.items())) for service, names in sorted(props.current_names.items())},
                description="current Docker secret name of each service's credentials on the Swarm manager (source of the service's secret)",
            )
