"""What a merge would do to a stack's infrastructure: resources added, removed, changed in place or replaced.

Two sources, one shape (``InfraChanges``):

* ``from_plan_json`` — ``terraform show -json`` of a saved plan: Terraform's own actions and
  ``replace_paths`` (where the stack can be planned: providers installed, engine reachable);
* ``structural_diff`` — two synthesized ``cdk.tf.json`` documents (the base ref's and the working
  tree's), compared resource by resource. An attribute that the provider cannot change in place
  (``FORCES_REPLACEMENT``) makes the change a replacement; a change reaches a resource through a
  ``local`` it uses and through a replaced resource's computed attribute (``image_id``, ``id``) it
  references, as it would in Terraform; a ``moved`` block turns a remove plus an add into a rename.

Only attribute *paths* are reported, never values: a plan's before/after carry secret values.
``verdict`` turns the changes into one line for the reviewer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "replace", "delete", "move"]
Source = Literal["terraform-plan", "structural-diff", "not-computed"]
Document = Mapping[str, Any]  # a parsed cdk.tf.json or `terraform show -json` document
VerdictLevel = Literal["none", "in-place", "additive", "hooks", "downtime", "data-loss", "unknown"]

# Attributes the kreuzwerker/docker provider (3.6.2) updates in place; every other attribute of these
# types is ForceNew. Unknown types are treated as in place (Terraform's plan is the authority there).
IN_PLACE: Mapping[str, frozenset[str]] = {
    "docker_container": frozenset(
        {
            "restart",
            "max_retry_count",
            "cpu_shares",
            "cpu_set",
            "memory",
            "memory_swap",
            "must_run",
            "start",
            "attach",
            "logs",
            "rm",
            "wait",
            "wait_timeout",
            "destroy_grace_seconds",
            "remove_volumes",
            "container_read_refresh_timeout_milliseconds",
        }
    ),
    "docker_image": frozenset({"keep_locally", "force_remove"}),
    "docker_volume": frozenset(),
    "docker_network": frozenset(),
    "terraform_data": frozenset({"input"}),
}
# Meta-arguments: they change no attribute of the resource (a provisioner runs at its next create).
META_KEYS = frozenset({"//", "depends_on", "lifecycle", "provisioner", "connection", "provider", "count", "for_each"})
# Lists of blocks compared by a natural key instead of their position: upload["/etc/postgresql/postgresql.conf"].content.
KEYED_BLOCKS: Mapping[str, str] = {
    "upload": "file",
    "mounts": "target",
    "labels": "label",
    "ports": "internal",
    "networks_advanced": "name",
    "volumes": "container_path",
}
_EXPRESSION = re.compile(r"\$\{(.*?)\}")
_LOCAL_REF = re.compile(r"(?<![\w.])local\.([A-Za-z0-9_-]+)")
_RESOURCE_REF = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)")


@dataclass(frozen=True, kw_only=True)
class AttributeChange:
    path: str
    forces_replacement: bool
    via: str | None = None  # what carried the change in: "local.<name>" or "<address> (replaced)"

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "forces_replacement": self.forces_replacement, "via": self.via}


@dataclass(kw_only=True)
class ResourceChange:
    address: str
    type: str
    action: Action
    attributes: list[AttributeChange] = field(default_factory=list)
    moved_from: str | None = None

    @property
    def name(self) -> str:
        return self.address.split(".", 1)[1]

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "type": self.type,
            "action": self.action,
            "moved_from": self.moved_from,
            "attributes": [a.as_dict() for a in self.attributes],
        }


@dataclass(kw_only=True)
class InfraChanges:
    source: Source
    detail: str  # how it was computed, or why it was not: one line
    resources: list[ResourceChange] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # outputs, locals, providers, backend, meta-arguments

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "detail": self.detail,
            "resources": [r.as_dict() for r in self.resources],
            "other": list(self.other),
        }


@dataclass(frozen=True, kw_only=True)
class Verdict:
    level: VerdictLevel
    line: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "line": self.line}


def forces_replacement(resource_type: str, path: str) -> bool:
    top = re.split(r"[.\[]", path, maxsplit=1)[0]
    if resource_type == "terraform_data":
        return top == "triggers_replace"
    allowed = IN_PLACE.get(resource_type)
    return allowed is not None and top not in allowed


# --- paths --------------------------------------------------------------------------------------


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _keyed(items: list[object], name: str) -> dict[str, object] | None:
    """A list of blocks (or ``env`` strings) by their natural key, when every item has a distinct one."""
    if name == "env" and all(isinstance(i, str) and "=" in i for i in items):
        keyed = {str(i).split("=", 1)[0]: i for i in items}
    elif name in KEYED_BLOCKS and all(isinstance(i, dict) and KEYED_BLOCKS[name] in i for i in items):
        keyed = {str(i[KEYED_BLOCKS[name]]): i for i in items if isinstance(i, dict)}
    else:
        return None
    return keyed if len(keyed) == len(items) else None


def changed_paths(before: object, after: object, prefix: str = "", name: str = "") -> list[str]:
    """Attribute paths where ``before`` and ``after`` differ (``//`` metadata and meta-arguments excluded at the top)."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):
            if key.startswith("//") or (not prefix and key in META_KEYS):
                continue
            if key not in before or key not in after:
                paths.append(_join(prefix, key))
            else:
                paths += changed_paths(before[key], after[key], _join(prefix, key), key)
        return paths
    if isinstance(before, list) and isinstance(after, list):
        old, new = _keyed(before, name), _keyed(after, name)
        if old is not None and new is not None:
            paths = []
            for key in sorted(set(old) | set(new)):
                item = f'{prefix}["{key}"]'
                if key not in old or key not in new:
                    paths.append(item)
                else:
                    paths += changed_paths(old[key], new[key], item, "")
            return paths
        paths = []
        for index in range(max(len(before), len(after))):
            item = f"{prefix}[{index}]"
            if index >= len(before) or index >= len(after):
                paths.append(item)
            else:
                paths += changed_paths(before[index], after[index], item, "")
        return paths
    return [] if before == after else [prefix or "(value)"]


def leaves(value: object, prefix: str = "", name: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf with its path, named as ``changed_paths`` names it."""
    if isinstance(value, dict):
        for key in sorted(value):
            if key.startswith("//") or (not prefix and key in META_KEYS):
                continue
            yield from leaves(value[key], _join(prefix, key), key)
    elif isinstance(value, list):
        keyed = _keyed(value, name)
        if keyed is not None:
            for key, item in keyed.items():
                yield from leaves(item, f'{prefix}["{key}"]', "")
        else:
            for index, item in enumerate(value):
                yield from leaves(item, f"{prefix}[{index}]", "")
    elif isinstance(value, str):
        yield prefix, value


# --- structural diff ----------------------------------------------------------------------------


def _resources(document: Document) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for resource_type, by_name in (document.get("resource") or {}).items():
        for name, body in by_name.items():
            out[f"{resource_type}.{name}"] = body
    return out


def _moves(document: Document) -> dict[str, str]:
    return {str(m["from"]): str(m["to"]) for m in (document.get("moved") or [])}


def _other_changes(base: Document, head: Document) -> list[str]:
    lines = []
    for block, label in (("output", "output"), ("locals", "local"), ("data", "data"), ("provider", "provider"), ("terraform", "terraform")):
        old, new = base.get(block) or {}, head.get(block) or {}
        assert isinstance(old, dict) and isinstance(new, dict)
        for key in sorted(set(old) | set(new)):
            if key.startswith("//"):
                continue
            if key not in old:
                lines.append(f"{label}.{key} added")
            elif key not in new:
                lines.append(f"{label}.{key} removed")
            elif old[key] != new[key]:
                where = ", ".join(p for p in changed_paths(old[key], new[key])[:6] if p != "(value)")
                lines.append(f"{label}.{key} changed" + (f" ({where})" if where else ""))
    return lines


def structural_diff(base: Document, head: Document, *, detail: str) -> InfraChanges:
    old, new = _resources(base), _resources(head)
    moves = {src: dst for src, dst in _moves(head).items() if src in old and dst in new and dst not in old}
    pairs: dict[str, str] = {address: address for address in new if address in old}  # head address -> base address
    pairs.update({dst: src for src, dst in moves.items()})
    changed_locals = {
        key
        for key in set(base.get("locals") or {}) | set(head.get("locals") or {})
        if (base.get("locals") or {}).get(key) != (head.get("locals") or {}).get(key)
    }
    changes: dict[str, ResourceChange] = {}
    for address, body in new.items():
        resource_type = address.split(".", 1)[0]
        if address not in pairs:
            changes[address] = ResourceChange(address=address, type=resource_type, action="create")
            continue
        paths = changed_paths(old[pairs[address]], body)
        changes[address] = ResourceChange(
            address=address,
            type=resource_type,
            action="update",
            attributes=[AttributeChange(path=p, forces_replacement=forces_replacement(resource_type, p)) for p in paths],
            moved_from=pairs[address] if pairs[address] != address else None,
        )
    _propagate(new, changes, changed_locals)
    resources = []
    for change in changes.values():
        if change.action == "update":
            if any(a.forces_replacement for a in change.attributes):
                change.action = "replace"
            elif not change.attributes:
                if change.moved_from is None:
                    continue
                change.action = "move"
        resources.append(change)
    moved_away = set(moves)
    for address in old:
        if address not in new and address not in moved_away:
            resources.append(ResourceChange(address=address, type=address.split(".", 1)[0], action="delete"))
    other = _other_changes(base, head)
    for address, body in new.items():
        if address in pairs:
            before = old[pairs[address]]
            for key in sorted(META_KEYS - {"//"}):
                if before.get(key) != body.get(key):
                    other.append(f"{address}: {key} changed (no change to the resource by itself)")
    return InfraChanges(source="structural-diff", detail=detail, resources=_ordered(resources), other=other)


def _propagate(new: Mapping[str, dict[str, object]], changes: dict[str, ResourceChange], changed_locals: set[str]) -> None:
    """Changes carried by references: a changed local, or a computed attribute of a created or replaced resource."""

    def replaced(address: str) -> bool:
        change = changes.get(address)
        return change is not None and (change.action == "create" or any(a.forces_replacement for a in change.attributes))

    for _ in range(len(new) + 1):  # until nothing new is carried (a reference chain is at most this long)
        grew = False
        for address, body in new.items():
            change = changes[address]
            if change.action == "create":
                continue
            known = {a.path for a in change.attributes}
            for path, text in leaves(body):
                if path in known:
                    continue
                via: str | None = None
                for expression in _EXPRESSION.findall(text):
                    local = next((m for m in _LOCAL_REF.findall(expression) if m in changed_locals), None)
                    if local is not None:
                        via = f"local.{local}"
                        break
                    for resource_type, name, attribute in _RESOURCE_REF.findall(expression):
                        target = f"{resource_type}.{name}"
                        if target in new and target != address and replaced(target):
                            target_body = new[target]
                            target_change = changes[target]
                            configured = attribute in target_body
                            if not configured or any(a.path.split(".")[0].split("[")[0] == attribute for a in target_change.attributes):
                                via = f"{target} ({'created' if target_change.action == 'create' else 'replaced'})"
                                break
                    if via:
                        break
                if via is not None:
                    change.attributes.append(AttributeChange(path=path, forces_replacement=forces_replacement(change.type, path), via=via))
                    known.add(path)
                    grew = True
        if not grew:
            return


_ORDER = {"delete": 0, "replace": 1, "update": 2, "move": 3, "create": 4}


def _ordered(resources: list[ResourceChange]) -> list[ResourceChange]:
    return sorted(resources, key=lambda r: (_ORDER[r.action], r.address))


# --- terraform show -json -----------------------------------------------------------------------


def _terraform_path(steps: list[object]) -> str:
    out = ""
    for step in steps:
        out = f"{out}[{step}]" if isinstance(step, int) else _join(out, str(step))
    return out


def _unknown_paths(unknown: object, prefix: str = "", name: str = "") -> list[str]:
    if unknown is True:
        return [prefix]
    if isinstance(unknown, dict):
        return [p for key in sorted(unknown) for p in _unknown_paths(unknown[key], _join(prefix, key), key)]
    if isinstance(unknown, list):
        return [p for index, item in enumerate(unknown) for p in _unknown_paths(item, f"{prefix}[{index}]", "")]
    return []


def from_plan_json(plan: Document, *, detail: str) -> InfraChanges:
    """``terraform show -json <plan>``: Terraform's actions; the changed paths from before/after (values never kept)."""
    resources: list[ResourceChange] = []
    for entry in plan.get("resource_changes") or []:
        if entry.get("mode") != "managed":
            continue
        change = entry.get("change") or {}
        actions = list(change.get("actions") or [])
        moved_from = entry.get("previous_address")
        if actions in (["delete", "create"], ["create", "delete"]):
            action: Action = "replace"
        elif actions == ["create"]:
            action = "create"
        elif actions == ["delete"]:
            action = "delete"
        elif actions == ["update"]:
            action = "update"
        elif moved_from:
            action = "move"
        else:
            continue  # no-op, read
        resource_type = str(entry.get("type"))
        forcing = {_terraform_path(p) for p in change.get("replace_paths") or []}
        attributes: list[AttributeChange] = []
        if action in ("update", "replace"):
            before, after = change.get("before") or {}, change.get("after") or {}
            paths = changed_paths(before, after)
            unknown = [
                p for p in _unknown_paths(change.get("after_unknown") or {}) if p and before.get(p.split(".")[0].split("[")[0]) is not None
            ]
            for path in dict.fromkeys([*paths, *unknown]):
                top = re.split(r"[.\[]", path, maxsplit=1)[0]
                forced = any(f == path or f.split(".")[0].split("[")[0] == top for f in forcing)
                attributes.append(AttributeChange(path=path, forces_replacement=forced))
        resources.append(
            ResourceChange(
                address=str(entry.get("address")), type=resource_type, action=action, attributes=attributes, moved_from=moved_from
            )
        )
    other = [
        f"output.{name} {'/'.join(c.get('actions') or [])}"
        for name, c in sorted((plan.get("output_changes") or {}).items())
        if (c.get("actions") or ["no-op"]) != ["no-op"]
    ]
    return InfraChanges(source="terraform-plan", detail=detail, resources=_ordered(resources), other=other)


# --- verdict ------------------------------------------------------------------------------------


DATABASE_INSTANCES = ("postgres", "timescale", "redis")


def _names(changes: list[ResourceChange]) -> str:
    return ", ".join(c.name for c in changes)


def verdict(infra: InfraChanges) -> Verdict:
    """One line, the worst consequence first: data loss, downtime, hooks re-run, additions, in-place updates."""
    if infra.source == "not-computed":
        return Verdict(level="unknown", line="infrastructure not computed (see Infrastructure)")
    by_action: dict[str, list[ResourceChange]] = {}
    for change in infra.resources:
        by_action.setdefault(f"{change.action}:{change.type}", []).append(change)

    def of(action: str, resource_type: str) -> list[ResourceChange]:
        return by_action.get(f"{action}:{resource_type}", [])

    parts: list[str] = []
    level: VerdictLevel = "none"
    lost = of("delete", "docker_volume") + of("replace", "docker_volume")
    if lost:
        parts.append(f"destroys {'a volume' if len(lost) == 1 else f'{len(lost)} volumes'} ({_names(lost)}): data loss")
        level = "data-loss"
    removed = of("delete", "docker_container")
    replaced = of("replace", "docker_container")
    if removed:
        parts.append(f"removes the {_names(removed)} container{'s' if len(removed) > 1 else ''}")
    if replaced:
        parts.append(f"replaces the {_names(replaced)} container{'s' if len(replaced) > 1 else ''}: brief downtime")
    if (removed or replaced) and level == "none":
        level = "downtime"
    for resource_type, what in (("docker_network", "network"), ("docker_image", "image")):
        for action, verb in (("replace", "replaces"), ("delete", "removes")):
            hit = of(action, resource_type)
            if hit:
                parts.append(f"{verb} the {_names(hit)} {what}{'s' if len(hit) > 1 else ''}")
    hooks = [c for c in of("replace", "terraform_data") + of("create", "terraform_data") if c.name == "post_apply"]
    if hooks:
        parts.append("re-runs the post-apply hooks")
        level = "hooks" if level == "none" else level
    created = [c for c in infra.resources if c.action == "create" and c.type != "terraform_data"]
    if created and level == "none":
        level = "additive"
    updated = [
        c
        for c in infra.resources
        if c.action in ("update", "move") or (c.action == "replace" and c.type == "terraform_data" and c.name != "post_apply")
    ]
    if not parts:
        if created:
            return Verdict(level="additive", line=f"additive only (adds {_names(created)})")
        if updated:
            return Verdict(level="in-place", line=f"in-place updates only ({_names(updated)}), nothing replaced")
        return Verdict(level="none", line="no infrastructure changes")
    if created:
        parts.append(f"adds {_names(created)}")
    if updated:
        parts.append(f"updates {_names(updated)} in place")
        level = "in-place" if level == "none" else level
    # A database's image (not an exporter's): `nndb upgrade` applies it with a proven backup and the way back.
    upgraded = [c.name for c in of("replace", "docker_image") if c.name in DATABASE_INSTANCES]
    if upgraded:
        parts.append(f"a database image changes ({', '.join(upgraded)}): apply it with `nndb upgrade` (docs/runbooks/upgrade-image.md)")
    return Verdict(level=level, line="; ".join(parts))
