"""Stable, meaningful Terraform addresses: ``docker_container.postgres``, not ``postgres_container_A7145DB3``.

cdktf names each element after its construct path plus a hash of it. Reviewers read those names in
every plan and PR diff, and the hash changes whenever a construct moves. ``DatabaseStack`` therefore
overrides cdktf's naming hook (``allocateLogicalId``) with ``stable_logical_id``: the construct path
below the stack, its parts joined by ``_``, without a last part that only repeats what the resource
type says (``postgres/container`` -> ``docker_container.postgres``, ``postgres/data`` ->
``docker_volume.postgres_data``, ``post-apply/run`` -> ``terraform_data.post_apply``).

Stacks deployed before have the hashed addresses in their state. ``add_moved_blocks`` gives every
resource a ``moved`` block from its hashed address, so Terraform renames it in state instead of
destroying and re-creating it (a data volume!). Keep them until every environment has applied once
with them (docs/deploy.md, "Resource addresses").
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable

from cdktf import App, TerraformDataSource, TerraformElement, TerraformResource, TerraformStack
from constructs import Construct, Node

# A last path part that names the resource's role, which its type already says.
ROLE_WORDS = frozenset({"container", "image", "network", "run", "guard", "secrets"})


def stable_name(path_below_stack: str) -> str:
    parts = path_below_stack.split("/")
    if len(parts) > 1 and parts[-1] in ROLE_WORDS:
        parts = parts[:-1]
    return "_".join(parts).replace("-", "_")


def _path_below(stack: TerraformStack, node: Node) -> str:
    return node.path.removeprefix(f"{stack.node.path}/")


def stable_logical_id(stack: TerraformStack, element: TerraformElement | Node) -> str:
    node = element.node if isinstance(element, TerraformElement) else element
    return stable_name(_path_below(stack, node))


def hashed_logical_ids(paths: Iterable[str]) -> dict[str, str]:
    """cdktf's own default name (path plus hash) for each construct path below a stack.

    Asked of cdktf itself, on a scratch stack that is never synthesized, so these are exactly the
    addresses that earlier versions of this project deployed.
    """
    hashed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="nndb-addresses-") as outdir:
        scratch = TerraformStack(App(outdir=outdir), "scratch")
        for path in paths:
            scope: Construct = scratch
            for part in path.split("/"):
                child = scope.node.try_find_child(part)
                scope = child if isinstance(child, Construct) else Construct(scope, part)
            hashed[path] = scratch.get_logical_id(scope.node)
    return hashed


def add_moved_blocks(stack: TerraformStack) -> None:
    """A ``moved`` block from the hashed address to the stable one, per resource; refuses two elements at one address."""
    elements = [n for n in stack.node.find_all() if isinstance(n, TerraformResource | TerraformDataSource)]
    taken: dict[str, str] = {}
    for element in elements:
        prefix = "" if isinstance(element, TerraformResource) else "data."
        address = f"{prefix}{element.terraform_resource_type}.{element.friendly_unique_id}"
        if address in taken:  # a construct layout bug: Terraform JSON would silently merge the two
            raise ValueError(f"{element.node.path} and {taken[address]} would both be {address}; rename one construct")
        taken[address] = element.node.path
    resources = [e for e in elements if isinstance(e, TerraformResource)]
    hashed = hashed_logical_ids(_path_below(stack, r.node) for r in resources)
    for resource in resources:
        # Constructs added after the stable addresses (the replicas) never had a hashed address to move from.
        if any(getattr(scope, "BORN_WITH_STABLE_ADDRESSES", False) for scope in resource.node.scopes):
            continue
        previous = hashed[_path_below(stack, resource.node)]
        if previous != resource.friendly_unique_id:
            resource.move_from_id(f"{resource.terraform_resource_type}.{previous}")
