"""Secrets for the deploy, resolved at plan time by our own program, never written into cdk.tf.json.

A ``data "external"`` source runs ``nndb secrets terraform-external <stack>``
(hashicorp/external) when Terraform plans. The program resolves every secret
through the environment's configured source (env/``*_FILE``/``.env.db`` for
local and dev, Vault through hvac for staging and prod) and fails the plan
with one line before any resource changes. The values exist only in Terraform
state; every reference is wrapped in ``sensitive()`` so plans and logs mask
them. See docs/secrets.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import Fn
from cdktf_cdktf_provider_external.data_external import DataExternal
from cdktf_cdktf_provider_external.provider import ExternalProvider
from constructs import Construct

SECRETS_PROGRAM: tuple[str, ...] = ("nndb", "secrets", "terraform-external")


@dataclass(frozen=True, kw_only=True)
class DeploySecretsProps:
    stack: str
    names: Sequence[str]
    # Non-secret: where each secret lives (from secrets.external_query); a Terraform Cloud agent
    # has only the stack directory, so the program must not need config/ to find them.
    query: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.query.get("stack") != self.stack:
            raise ValueError("the query must name the same stack as the props")
        if not self.names:
            raise ValueError("DeploySecrets needs at least one secret name")
        if len(set(self.names)) != len(self.names):
            raise ValueError("secret names must be unique")


class DeploySecrets(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DeploySecretsProps) -> None:
        super().__init__(scope, id)
        self._names = frozenset(props.names)
        ExternalProvider(self, "external")
        self.source = DataExternal(
            self,
            "secrets",
            program=[*SECRETS_PROGRAM, props.stack],
            query=dict(sorted(props.query.items())),
        )
        self._result = self.source.result

    def _value(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(f"secret {name!r} is not provided by this stack's DeploySecrets")
        return self._result.lookup(name)

    def sensitive(self, name: str) -> str:
        """A Terraform reference to secret ``name``, marked sensitive."""
        return Fn.sensitive(self._value(name))

    def sha256(self, name: str) -> str:
        """The SHA-256 hex digest of secret ``name`` (what Redis ACL files store), still sensitive."""
        return Fn.sensitive(Fn.sha256(self._value(name)))

    def fingerprint(self) -> str:
        """A sensitive digest of every secret: changes exactly when any value (e.g. a rotation) does."""
        return Fn.sensitive(Fn.sha256(Fn.jsonencode(self.source.result)))
