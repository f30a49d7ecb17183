"""A guard that runs before anything of a stack is destroyed: confirmation, then a verified backup.

``terraform_data`` with one destroy-time local-exec provisioner, ``nndb before-destroy <stack>``.
It depends on the post-apply resource and the containers, so Terraform destroys it first: its
provisioner runs while every container and data volume still exists, and if it fails (no
confirmation, or the backup cannot be taken and proven by a restore) the destroy stops there with
nothing removed. Its triggers never change, so a normal deploy (a replaced container, re-run hooks)
never destroys it; only destroying the stack, or removing the guard from the code, does.

It is created once the post-apply hooks succeeded for the first time: a stack whose first deploy
never finished has no data worth a backup and is destroyed without one. See docs/deploy.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf import DataResource, ITerraformDependable, LocalExecProvisioner
from constructs import Construct

GUARD_COMMAND: tuple[str, ...] = ("nndb", "before-destroy")


@dataclass(frozen=True, kw_only=True)
class DestroyGuardProps:
    stack: str
    depends_on: Sequence[ITerraformDependable]
    # The post-apply resource's environment (shipped config/ and sql/ copies): the guard reads the same.
    environment: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.depends_on:
            raise ValueError("the destroy guard must depend on what it protects (containers, post-apply hooks)")


class DestroyGuard(Construct):
    def __init__(self, scope: Construct, id: str, *, props: DestroyGuardProps) -> None:
        super().__init__(scope, id)
        self.command = " ".join([*GUARD_COMMAND, props.stack])
        self.resource = DataResource(
            self,
            "guard",
            # Constant: the guard is created once and destroyed only with the stack.
            input={"stack": props.stack},
            depends_on=list(props.depends_on),
            provisioners=[
                LocalExecProvisioner(
                    type="local-exec",
                    when="destroy",
                    command=self.command,
                    environment=dict(sorted(props.environment.items())),
                )
            ],
        )
