"""The container skeleton every container of the tier shares: PostgreSQL, TimescaleDB, Redis and their exporters.

Written once here, used by ``PostgresInstance``, ``RedisInstance`` and the exporters: the official
image kept on the host, named data volumes, the uploaded files, the published port, the tier network,
the health check, limits, labels and rotated logs. Each construct says only what differs (its
command, environment, files, volumes and health command); ``database_container`` turns that into the
provider's generated structs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from cdktf import ITerraformDependable, TerraformProvider, TerraformResourceLifecycle
from cdktf_cdktf_provider_docker.container import (
    Container,
    ContainerHealthcheck,
    ContainerLabels,
    ContainerMounts,
    ContainerNetworksAdvanced,
    ContainerPorts,
    ContainerUpload,
)
from cdktf_cdktf_provider_docker.image import Image
from cdktf_cdktf_provider_docker.volume import Volume, VolumeLabels
from constructs import Construct

from nexanest_db.constructs.shared import CPU_LIMIT_LABEL, CPU_PERIOD_US, ContainerLimits, FileUpload, PublishedPort

# The server's TLS pair, uploaded the same way into PostgreSQL and Redis (tls.enabled); each
# construct's entrypoint copies the root-owned key upload to a key file its server user owns.
TLS_CERT_PATH = "/run/secrets/tls/server.crt"
TLS_KEY_UPLOAD_PATH = "/run/secrets/tls/server.key"
# The CA bundle a container verifies a server with: Redis's health check (redis-cli --tls), a replica its primary.
TLS_CA_PATH = "/run/secrets/tls/ca.crt"


def _rotated_json_logs() -> Mapping[str, str]:
    return {"max-size": "10m", "max-file": "3"}


@dataclass(frozen=True, kw_only=True)
class DatabaseContainerProps:
    """What every container of the tier is given; each construct's props extend it with their own fields."""

    image_example: ClassVar[str] = "name:tag"  # shown when ``image`` is refused

    container_name: str
    image: str
    published: PublishedPort
    limits: ContainerLimits
    labels: Mapping[str, str]
    # The tier network; None for a container on another engine (a replica host), which has no tier network.
    network_name: str | None = None
    log_opts: Mapping[str, str] = field(default_factory=_rotated_json_logs)
    # The container is a fenced old primary: ``nndb failover`` moved the instance's primary to a replica and
    # stopped this one. It stays defined (its data volume is the evidence and the way back) but is created
    # stopped and never started by a deploy: kreuzwerker/docker 3.6.2 deletes a stopped ``must_run``
    # container when it reads it and creates it anew, started, which would bring back a second writable primary.
    # It publishes no port: 3.6.2 reads a container's ports from its running state, so a stopped one with a
    # published port is replaced by every plan; and started by hand (to look at its data) no client reaches it.
    fenced: bool = False

    def __post_init__(self) -> None:
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"image must be a reference like {self.image_example}, got {self.image!r}")


@dataclass(frozen=True, kw_only=True)
class DataVolume:
    """A named volume ``<container_name>-<id>`` mounted at ``target``; outlives container replacement."""

    id: str
    target: str
    protect: bool  # prevent_destroy (config ``protected``)


@dataclass(frozen=True, kw_only=True)
class BuiltContainer:
    image: Image
    volumes: Mapping[str, Volume]  # by DataVolume.id
    container: Container


def database_container(
    scope: Construct,
    props: DatabaseContainerProps,
    *,
    network_alias: str | None,
    files: Sequence[FileUpload],
    command: Sequence[str] | None = None,
    env: Sequence[str] = (),
    volumes: Sequence[DataVolume] = (),
    healthcheck: ContainerHealthcheck | None = None,
    entrypoint: Sequence[str] | None = None,
    stop_timeout_s: int | None = None,
    provider: TerraformProvider | None = None,
    depends_on: Sequence[ITerraformDependable] = (),
) -> BuiltContainer:
    """The image (``image``), the data volumes (by their ids) and the container (``container``) in ``scope``.

    The ids are the ones the stable Terraform addresses are made of (``stacks/addresses.py``): keep them.
    ``provider``: another engine's Docker provider alias (a replica host) for the image, volumes and
    container; ``depends_on``: what must exist first (a replica: the hooks that made its role and slot).
    """
    # keep_locally: destroying the stack must not delete the shared official image from the host.
    image = Image(scope, "image", name=props.image, keep_locally=True, provider=provider)
    built_volumes = {
        volume.id: named_volume(
            scope, volume.id, name=f"{props.container_name}-{volume.id}", labels=props.labels, protect=volume.protect, provider=provider
        )
        for volume in volumes
    }
    networks = (
        [network_attachment(props.network_name, network_alias)] if props.network_name is not None and network_alias is not None else None
    )
    container = Container(
        scope,
        "container",
        name=props.container_name,
        image=image.image_id,
        command=list(command) if command is not None else None,
        env=sorted(env) or None,
        upload=uploads(files),
        mounts=[volume_mount(built_volumes[v.id].name, v.target) for v in volumes] or None,
        ports=None if props.fenced else [port(props.published)],
        networks_advanced=networks,
        healthcheck=healthcheck,
        entrypoint=list(entrypoint) if entrypoint is not None else None,
        # None keeps Docker's 10 s; a server that needs longer for a clean shutdown says so.
        stop_timeout=stop_timeout_s,
        destroy_grace_seconds=stop_timeout_s,
        provider=provider,
        depends_on=list(depends_on) or None,
        **runtime_arguments(limits=props.limits, labels_=props.labels, log_opts=props.log_opts, fenced=props.fenced),
    )
    return BuiltContainer(image=image, volumes=built_volumes, container=container)


def labels(values: Mapping[str, str]) -> list[ContainerLabels]:
    return [ContainerLabels(label=key, value=value) for key, value in sorted(values.items())]


def uploads(files: Sequence[FileUpload]) -> list[ContainerUpload]:
    return [ContainerUpload(file=f.path, content=f.content, permissions=f.permissions) for f in sorted(files, key=lambda f: f.path)]


def port(published: PublishedPort) -> ContainerPorts:
    return ContainerPorts(internal=published.container_port, external=published.host_port, ip=published.bind_address, protocol="tcp")


def volume_mount(volume_name: str, target: str) -> ContainerMounts:
    return ContainerMounts(type="volume", source=volume_name, target=target)


def network_attachment(network_name: str, alias: str) -> ContainerNetworksAdvanced:
    return ContainerNetworksAdvanced(name=network_name, aliases=[alias])


def named_volume(
    scope: Construct, id: str, *, name: str, labels: Mapping[str, str], protect: bool, provider: TerraformProvider | None = None
) -> Volume:
    """A named data volume: outlives container replacement; ``protect`` adds ``prevent_destroy``."""
    return Volume(
        scope,
        id,
        name=name,
        labels=[VolumeLabels(label=k, value=v) for k, v in sorted(labels.items())],
        lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if protect else None,
        provider=provider,
    )


def runtime_arguments(*, limits: ContainerLimits, labels_: Mapping[str, str], log_opts: Mapping[str, str], fenced: bool = False) -> dict:
    """The ``docker_container`` arguments every container shares: limits, restart, labels, rotated JSON logs.

    Shaped for kreuzwerker/docker 3.6.2 (tests/unit/test_provider_shapes.py holds the rules):

    - no ``cpus``: 3.6.2 type-asserts that string attribute as a float and crashes; the same CFS limit
      goes as ``cpu_period``/``cpu_quota``, plus ``CPU_LIMIT_LABEL`` so a change replaces the container;
    - ``memory_swap`` explicit, because Docker fills it in and 3.6.2 reads it back;
    - ``wait = false``: the provider's wait polls the health check, whose first run comes only after
      the ADR's 30 s interval, and ends in a bare "container failed to be in healthy state". The
      post-apply resource runs ``nndb wait-ready`` instead (seconds, and a one-line diagnosis);
    - ``fenced``: ``start = false``, ``must_run = false`` and ``restart = "no"`` (the fence's own policy),
      so neither a deploy nor the engine starts a fenced old primary.
    """
    return {
        "wait": False,
        "restart": "no" if fenced else limits.restart,
        "memory": limits.memory_mb,
        "memory_swap": limits.memory_swap_mb,
        "cpu_period": CPU_PERIOD_US,
        "cpu_quota": limits.cpu_quota_us,
        "labels": labels({**labels_, CPU_LIMIT_LABEL: f"{limits.cpus:g}"}),
        "log_driver": "json-file",
        "log_opts": dict(sorted(log_opts.items())),
        "must_run": not fenced,
        **({"start": False} if fenced else {}),
    }
