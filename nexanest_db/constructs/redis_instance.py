"""The Redis 7 container: official image, rendered redis.conf, an ACL file whose only entry at
creation is the password-protected default user (service users come from the post-apply hooks)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from cdktf import Fn
from cdktf_cdktf_provider_docker.volume import Volume
from constructs import Construct

from nexanest_db.constructs import shared
from nexanest_db.constructs.database_container import (
    TLS_CA_PATH,
    TLS_CERT_PATH,
    TLS_KEY_UPLOAD_PATH,
    DatabaseContainerProps,
    DataVolume,
    database_container,
)
from nexanest_db.constructs.shared import FileUpload, HealthPolicy

# Where things live in the container; config/templates/redis.conf.j2 names some of them (rendering.py).
DATA_DIR = "/data"
CONFIG_PATH = "/usr/local/etc/redis/redis.conf"
ACL_PATH = "/data/users.acl"  # on the data volume, owned by the redis user: ACL SAVE rewrites it
PASSWORD_FILE = "/run/secrets/redis_password"  # noqa: S105 - a path, not a password
# tls.enabled: the same uploads as PostgreSQL's, a redis-owned key copy, and the CA for redis-cli --tls in the health check.
TLS_KEY_PATH = "/run/secrets/tls/server-redis.key"

_ACL_USER = re.compile(r"^[a-zA-Z0-9_-]+$")

TLS_ENTRYPOINT = shared.key_owner_entrypoint(user="redis", uploaded_key=TLS_KEY_UPLOAD_PATH, key_path=TLS_KEY_PATH)


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
class RedisInstanceProps(DatabaseContainerProps):
    image_example: ClassVar[str] = "redis:7-alpine"

    password: str
    acl_users: Sequence[RedisAclUser]
    health: HealthPolicy
    network_alias: str
    config_content: str
    config_path: str = CONFIG_PATH
    acl_path: str = ACL_PATH
    protect_data: bool = False
    tls: RedisTls | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
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
        if props.tls is not None:
            files += [
                FileUpload(path=TLS_CERT_PATH, content=props.tls.cert, permissions="0444"),
                FileUpload(path=TLS_KEY_UPLOAD_PATH, content=props.tls.key, permissions="0400"),
                FileUpload(path=TLS_CA_PATH, content=props.tls.ca, permissions="0444"),
            ]
            # The health check verifies the server certificate against the uploaded CA (no --insecure).
            tls_flags = f" --tls --cacert {TLS_CA_PATH}"
        check = f'REDISCLI_AUTH="$(cat {PASSWORD_FILE})" redis-cli{tls_flags} -p {props.published.container_port} ping | grep -q PONG'
        built = database_container(
            self,
            props,
            network_alias=props.network_alias,
            files=files,
            command=["redis-server", props.config_path],
            volumes=[DataVolume(id="data", target=DATA_DIR, protect=props.protect_data)],
            healthcheck=props.health.healthcheck(check),
            entrypoint=TLS_ENTRYPOINT if props.tls is not None else None,
        )
        self.image = built.image
        self.data_volume: Volume = built.volumes["data"]
        self.container = built.container
        self.container_name: str = props.container_name
        self.host_port: int = props.published.host_port

    @property
    def container_id(self) -> str:
        """The container's id (a Terraform reference): changes exactly when the container is replaced."""
        return self.container.id
