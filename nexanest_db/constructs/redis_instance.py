"""The Redis 7 container: official image, rendered redis.conf, an ACL file whose only entry at
creation is the password-protected default user (service users come from the post-apply hooks)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import Fn
from cdktf_cdktf_provider_docker.container import Container
from cdktf_cdktf_provider_docker.image import Image
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.shared import ContainerLimits, FileUpload, HealthPolicy, PublishedPort
from nexanest_db.rendering import REDIS_TLS_KEY_PATH, TLS_CA_PATH, TLS_CERT_PATH, TLS_KEY_UPLOAD_PATH

DATA_DIR = "/data"
PASSWORD_FILE = "/run/secrets/redis_password"  # noqa: S105 - a path, not a password


_ACL_USER = re.compile(r"^[a-zA-Z0-9_-]+$")

TLS_ENTRYPOINT = shared.key_owner_entrypoint(user="redis", uploaded_key=TLS_KEY_UPLOAD_PATH, key_path=REDIS_TLS_KEY_PATH)


@dataclass(frozen=True, kw_only=True)
class RedisTls:
    """The server's TLS pair and the CA the health check verifies it with (PEM; Terraform references)."""

    cert: str
    key: str
    ca: str

    def __post_init__(self) -> None:
        if not (self.cert and self.key and self.ca):
            raise ValueError("Redis TLS needs the certificate, the key and the CA")


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
    tls: RedisTls | None = None
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
        self.data_volume = shared.named_volume(
            self, "data", name=f"{props.container_name}-data", labels=props.labels, protect=props.protect_data
        )
        # The ACL file sits on the data volume (owned by the image's redis user) so ACL SAVE can
        # rewrite it. It is uploaded complete, service users included, so a replaced container
        # serves every service from its first second instead of waiting for the hooks.
        acl_lines = [
            Fn.format("user %s on #%s %s\n", [user.name, user.password_sha256, " ".join(user.rules)])
            for user in sorted(props.acl_users, key=lambda u: u.name)
        ]
        self.acl_content: str = Fn.join("", acl_lines)  # a replica serves the same users (constructs/redis_replica.py)
        files = [
            FileUpload(path=props.config_path, content=props.config_content),
            FileUpload(path=props.acl_path, content=self.acl_content, permissions="0600"),
            FileUpload(path=PASSWORD_FILE, content=props.password),
        ]
        # REDISCLI_AUTH keeps the password out of the process list (never -a on the command line).
        tls_flags = ""
        extra: dict[str, object] = {}
        if props.tls is not None:
            files += [
                FileUpload(path=TLS_CERT_PATH, content=props.tls.cert, permissions="0444"),
                FileUpload(path=TLS_KEY_UPLOAD_PATH, content=props.tls.key, permissions="0400"),
                FileUpload(path=TLS_CA_PATH, content=props.tls.ca, permissions="0444"),
            ]
            extra["entrypoint"] = list(TLS_ENTRYPOINT)
            # The health check verifies the server certificate against the uploaded CA (no --insecure).
            tls_flags = f" --tls --cacert {TLS_CA_PATH}"
        check = f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli{tls_flags} -p {props.published.container_port} ping | grep -q PONG'
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
            **extra,
            **shared.runtime_arguments(limits=props.limits, labels_=props.labels, log_opts=props.log_opts),
        )
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port

    @property
    def container_id(self) -> str:
        """The container's id (a Terraform reference): changes exactly when the container is replaced."""
        return self.container.id
