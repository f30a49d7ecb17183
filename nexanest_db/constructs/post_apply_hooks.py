"""Run the post-apply hooks as part of ``cdktf deploy``: no second command.

A ``terraform_data`` resource is replaced whenever the content hash of
``sql/``, the rendered configuration, any database container id, or the
(sensitive) digest of the secrets changes. Its local-exec provisioners then run,
in order, from the stack directory (``cdktf.out/stacks/<stack>/``; the CLI finds
the project by walking up):

1. ``nndb wait-ready <stack>``: the containers are created with ``wait = false``
   (see ``database_container.runtime_arguments``), so the deploy waits here until every
   database answers on its published port (a PostgreSQL ping, a Redis PING),
   bounded by ``healthcheck.deploy_wait_timeout_s``. A container that does not
   come up fails the apply with one line: its name, state and last log lines.
2. ``nndb hooks run <stack>``.

A failing step fails the apply, and Terraform taints the resource so the next
deploy runs both again. An unchanged deploy plans nothing and runs nothing;
``nndb hooks run <stack>`` is the manual way (idempotent).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import AssetType, DataResource, ITerraformDependable, LocalExecProvisioner, TerraformAsset
from constructs import Construct

HOOKS_COMMAND: tuple[str, ...] = ("nndb", "hooks", "run")
READY_COMMAND: tuple[str, ...] = ("nndb", "wait-ready")
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class PostApplyHooksProps:
    stack: str
    content_hashes: Mapping[str, str]
    container_ids: Mapping[str, str]
    depends_on: Sequence[ITerraformDependable]
    # A sensitive digest of the secrets: a rotated login-role password changes no container, yet
    # the hooks must run to set it in PostgreSQL/Redis.
    secrets_fingerprint: str | None = None
    # The environment's config file and sql/ travel with the stack directory (assets/), because a
    # Terraform Cloud run has nothing else; the hooks read these copies, i.e. exactly what was
    # planned. Only this stack's own file: another environment's config (or config/README.md)
    # must not change this stack's output or re-run its hooks.
    config_file: str | None = None
    sql_dir: str | None = None
    # monitoring/identities.toml too: the hooks create the exporters' identities from it. Only that
    # file: the rules, their tests and the README are not the hooks' input.
    monitoring_file: str | None = None

    def __post_init__(self) -> None:
        for name, digest in self.content_hashes.items():
            if not _HEX.match(digest):
                raise ValueError(f"content hash {name!r} must be a sha256 hex digest")
        if not self.container_ids:
            raise ValueError("post-apply hooks need at least one container to follow")
        if (self.config_file is None) != (self.sql_dir is None):
            raise ValueError("ship both config_file and sql_dir with the stack, or neither")
        if self.config_file and not {"config_file", "sql"} <= set(self.content_hashes):
            raise ValueError("shipping the config file and sql/ needs their content hashes ('config_file', 'sql')")
        if self.monitoring_file and (not self.config_file or "monitoring" not in self.content_hashes):
            raise ValueError(
                "shipping monitoring/identities.toml needs the config file and sql/ shipped too, and its content hash ('monitoring')"
            )


class PostApplyHooks(Construct):
    def __init__(self, scope: Construct, id: str, *, props: PostApplyHooksProps) -> None:
        super().__init__(scope, id)
        self.command = " ".join([*HOOKS_COMMAND, props.stack])
        self.ready_command = " ".join([*READY_COMMAND, props.stack])
        triggers = {f"content_{k}": v for k, v in sorted(props.content_hashes.items())}
        triggers.update({f"container_{k}": v for k, v in sorted(props.container_ids.items())})
        if props.secrets_fingerprint is not None:
            triggers["secrets"] = props.secrets_fingerprint
        environment = {"NNDB_TRIGGERED_BY": "terraform"}
        if props.config_file and props.sql_dir:
            config_asset = TerraformAsset(
                self, "config", path=props.config_file, type=AssetType.FILE, asset_hash=props.content_hashes["config_file"]
            )
            sql_asset = TerraformAsset(self, "sql", path=props.sql_dir, type=AssetType.DIRECTORY, asset_hash=props.content_hashes["sql"])
            # The hooks look for <environment>.toml in NNDB_CONFIG_DIR: the folder the file asset lands in.
            environment.update({"NNDB_CONFIG_DIR": posixpath.dirname(config_asset.path), "NNDB_SQL_DIR": sql_asset.path})
            if props.monitoring_file:
                monitoring_asset = TerraformAsset(
                    self, "monitoring", path=props.monitoring_file, type=AssetType.FILE, asset_hash=props.content_hashes["monitoring"]
                )
                environment["NNDB_MONITORING_DIR"] = posixpath.dirname(monitoring_asset.path)
        self.resource = DataResource(
            self,
            "run",
            triggers_replace=triggers,
            depends_on=list(props.depends_on),
            provisioners=[
                LocalExecProvisioner(type="local-exec", command=self.ready_command, environment=environment),
                LocalExecProvisioner(type="local-exec", command=self.command, environment=environment),
            ],
        )
        # What the destroy guard needs to run the same nndb against the same shipped config/sql.
        self.environment: dict[str, str] = environment
