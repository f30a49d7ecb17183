"""The dedicated bridge network of the database tier (ADR: separate networks for the database tier)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf_cdktf_provider_docker.network import Network, NetworkLabels
from constructs import Construct


@dataclass(frozen=True, kw_only=True)
class DatabaseNetworkProps:
    name: str
    internal: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("network name must not be empty")


class DatabaseNetwork(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DatabaseNetworkProps) -> None:
        super().__init__(scope, id)
        self.network = Network(
            self,
            "network",
            name=props.name,
            driver="bridge",
            internal=props.internal,
            labels=[NetworkLabels(label=k, value=v) for k, v in sorted(props.labels.items())],
        )
        self.name: str = self.network.name
