"""The Redis 7 container: official image, rendered redis.conf, an ACL file whose only entry at
creation is the password-protected default user (service users come from the post-apply hooks)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf import Fn, TerraformResourceLifecycle
from cdktf_cdktf_provider_docker.container import Container
from cdktf_cdktf_provider_docker.image import Image
from cdktf_cdktf_provider_docker.volume import Volume, VolumeLabels
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.shared import ContainerLimits, FileUpload, HealthPolicy, PublishedPort

DATA_DIR = "/data"
PASSWORD_FILE = "/run/secrets/redis_password"  # noqa: S105 - a path, not a password


@dataclass(frozen=True, kw_only=True)
class RedisInstanceProps:
    container_name: str
    image: str
    password: str
    password_sha256: str
    published: PublishedPort
    limits: ContainerLimits
    health: HealthPolicy
    network_name: str
    network_alias: str
    config_path: str
    config_content: str
    acl_path: str
    labels: Mapping[str, str]
    protect_data: bool = False
    log_opts: Mapping[str, str] = field(default_factory=lambda: {"max-size": "10m", "max-file": "3"})

    def __post_init__(self) -> None:
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"image must be a reference like redis:7-alpine, got {self.image!r}")
        if self.acl_path == self.config_path:
            raise ValueError("the ACL file and redis.conf must be different files")


class RedisInstance(Construct):
    def __init__(self, scope: Construct, id: str, *, props: RedisInstanceProps) -> None:
        super().__init__(scope, id)
        self.image = Image(self, "image", name=props.image, keep_locally=True)
        self.data_volume = Volume(
            self,
            "data",
            name=f"{props.container_name}-data",
            labels=[VolumeLabels(label=k, value=v) for k, v in sorted(props.labels.items())],
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.protect_data else None,
        )
        # 0640-style secrecy is moot inside a single-purpose container; the files must be readable
        # by the image's unprivileged redis user. The ACL file is writable so ACL SAVE can persist users.
        acl_line = Fn.format("user default on #%s ~* &* +@all\n", [props.password_sha256])
        files = [
            FileUpload(path=props.config_path, content=props.config_content),
            FileUpload(path=props.acl_path, content=acl_line, permissions="0600"),
            FileUpload(path=PASSWORD_FILE, content=props.password),
        ]
        # REDISCLI_AUTH keeps the password out of the process list (never -a on the command line).
        check = f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli -p {props.published.container_port} ping | grep -q PONG'
        self.container = Container(
            self,
            "container",
            name=props.container_name,
            image=self.image.image_id,
            command=["redis-server", props.config_path],
            upload=shared.uploads(files),
            mounts=[shared.volume_mount(self.data_volume.name, DATA_DIR)],
            ports=[shared.port(props.published)],
            networks_advanced=[shared.network_attachment(props.network_name, props.network_alias)],
            healthcheck=props.health.healthcheck(check),
            wait=True,
            wait_timeout=props.health.deploy_wait_timeout_s,
            restart=props.limits.restart,
            memory=props.limits.memory_mb,
            cpus=str(props.limits.cpus),
            labels=shared.labels(props.labels),
            log_driver="json-file",
            log_opts=dict(sorted(props.log_opts.items())),
            must_run=True,
        )
        self.container_name: str = props.container_name
        self.container_id: str = self.container.id
        self.host_port: int = props.published.host_port
