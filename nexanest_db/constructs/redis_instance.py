"""The Redis 7 container: official image, rendered redis.conf, an ACL file whose only entry at
creation is the password-protected default user (service users come from the post-apply hooks)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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


_ACL_USER = re.compile(r"^[a-zA-Z0-9_-]+$")


@dataclass(frozen=True, kw_only=True)
class RedisAclUser:
    """One line of the uploaded ACL file: ``user <name> on #<sha256> <rules...>``."""

    name: str
    password_sha256: str  # a (sensitive) Terraform reference
    rules: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _ACL_USER.match(self.name):
            raise ValueError(f"Redis ACL user name {self.name!r} must be letters, digits, '_' or '-'")
        for rule in self.rules:
            if not rule or any(c.isspace() for c in rule) or rule[0] not in "~&+-":
                raise ValueError(f"Redis ACL rule {rule!r} must be one ~keys, &channels, +command or -command token")


@dataclass(frozen=True, kw_only=True)
class RedisInstanceProps:
    container_name: str
    image: str
    password: str
    acl_users: Sequence[RedisAclUser]
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
        names = [user.name for user in self.acl_users]
        if "default" not in names:
            raise ValueError("the ACL file must define the (password-protected) default user")
        if len(names) != len(set(names)):
            raise ValueError("Redis ACL user names must be unique")


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
        # The ACL file sits on the data volume (owned by the image's redis user) so ACL SAVE can
        # rewrite it. It is uploaded complete, service users included, so a replaced container
        # serves every service from its first second instead of waiting for the hooks.
        acl_lines = [
            Fn.format("user %s on #%s %s\n", [user.name, user.password_sha256, " ".join(user.rules)])
            for user in sorted(props.acl_users, key=lambda u: u.name)
        ]
        files = [
            FileUpload(path=props.config_path, content=props.config_content),
            FileUpload(path=props.acl_path, content=Fn.join("", acl_lines), permissions="0600"),
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
