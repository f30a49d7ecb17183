"""What the Swarm manager holds of the stack's published secrets, and which services still use an older generation.

Read-only: ``docker info``, ``docker secret ls``/``inspect`` and ``docker service ls``/``inspect``
on the manager's engine (``[swarm] docker``, reached like the stack's own engine, ``nexanest_db.engine``).
Docker never returns a secret's content, and nothing here asks for it: the report is names, labels
and which service mounts which secret.

The hand-off is complete when every current generation exists on the manager and no service mounts
an older generation (or a secret of the stack the config no longer declares); otherwise the report
says which service to move and how, and the command exits 17 (``SwarmError``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from nexanest_db.config import EnvironmentConfig
from nexanest_db.engine import Engine
from nexanest_db.errors import ConfigError, SwarmError
from nexanest_db.swarm import CREDENTIAL_LABEL, GENERATION_LABEL, SERVICE_LABEL, STACK_LABEL, PublishedSecret, published_secrets


@dataclass(frozen=True, kw_only=True)
class SecretOnManager:
    """One secret of the stack: declared by the config, found on the manager, or both."""

    name: str
    service: str
    credential: str
    generation: int | None
    declared: bool
    current: bool
    present: bool
    used_by: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        if not self.declared:
            return "retired"  # on the manager, no longer in the config: the next deploy removes it once unused
        if not self.present:
            return "missing"
        return "current" if self.current else "kept"


@dataclass(frozen=True, kw_only=True)
class SwarmReport:
    stack: str
    manager: str
    secrets: tuple[SecretOnManager, ...]
    moves: tuple[str, ...] = ()  # one line per service still mounting a non-current secret: what to run
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return not self.problems


def _json_lines(engine: Engine, *args: str, what: str) -> list[dict]:
    result = engine.run(*args)
    if result is None:
        raise SwarmError(
            f"Swarm manager {engine.description}: `docker {args[0]} {args[1]}` did not answer; check [swarm] docker and the host"
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise SwarmError(f"Swarm manager {engine.description}: listing {what} failed ({last}); check that it is a Swarm manager")
    text = result.stdout.strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except ValueError:
        raise SwarmError(
            f"Swarm manager {engine.description}: `docker {args[0]} inspect` gave no JSON; check the docker CLI there"
        ) from None
    return parsed if isinstance(parsed, list) else [parsed]


def _ids(engine: Engine, *args: str, what: str) -> list[str]:
    result = engine.run(*args)
    if result is None:
        raise SwarmError(
            f"Swarm manager {engine.description}: `docker {' '.join(args[:2])}` did not answer; check [swarm] docker and the host"
        )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise SwarmError(f"Swarm manager {engine.description}: listing {what} failed ({last}); check that it is a Swarm manager")
    return result.stdout.split()


def check_manager(engine: Engine) -> None:
    result = engine.run("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    if result is None or result.returncode != 0:
        why = "did not answer" if result is None else (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise SwarmError(f"Swarm manager {engine.description}: `docker info` {why}; check [swarm] docker in the config and the host")
    state = result.stdout.split()
    if state != ["active", "true"]:
        what = (
            "a Swarm worker, not a manager" if state == ["active", "false"] else f"in no Swarm (state: {state[0] if state else 'unknown'})"
        )
        raise SwarmError(f"Swarm manager {engine.description}: the engine is {what}; point [swarm] docker at a manager node")


def mounted_secrets(engine: Engine) -> dict[str, tuple[str, ...]]:
    """Secret name -> the services mounting it, for every service on the Swarm."""
    ids = _ids(engine, "service", "ls", "--quiet", what="services")
    users: dict[str, list[str]] = {}
    if not ids:
        return {}
    for service in _json_lines(engine, "service", "inspect", *ids, what="services"):
        name = str(service.get("Spec", {}).get("Name", ""))
        container = service.get("Spec", {}).get("TaskTemplate", {}).get("ContainerSpec", {})
        for secret in container.get("Secrets") or []:
            users.setdefault(str(secret.get("SecretName", "")), []).append(name)
    return {secret: tuple(sorted(names)) for secret, names in users.items()}


def _move_line(service: str, old: str, new: PublishedSecret | None, target: str) -> str:
    if new is None:
        return f"{service} mounts {old}, which the config no longer declares; move it off that secret (docker service update --secret-rm {old} ... {service})"
    return (
        f"{service} still mounts {old}; move it to {new.name}: "
        f"docker service update --secret-rm {old} --secret-add source={new.name},target={target} {service}"
    )


def inventory(config: EnvironmentConfig, engine: Engine | None = None) -> SwarmReport:
    """The stack's secrets on the Swarm manager against what the config declares."""
    if config.swarm is None:
        raise ConfigError(f"config/{config.environment}.toml has no [swarm] table; this stack publishes no Docker secrets")
    engine = engine or Engine.for_docker(config.swarm.docker)
    check_manager(engine)
    ids = _ids(engine, "secret", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={config.stack}", what="secrets")
    found = {
        str(s.get("Spec", {}).get("Name", "")): s.get("Spec", {})
        for s in (_json_lines(engine, "secret", "inspect", *ids, what="secrets") if ids else [])
    }
    users = mounted_secrets(engine)
    declared = {p.name: p for p in published_secrets(config)}
    current = {(p.service, p.credential): p for p in declared.values() if p.current}

    secrets: list[SecretOnManager] = []
    moves: list[str] = []
    problems: list[str] = []
    for name in sorted(set(declared) | set(found)):
        entry = declared.get(name)
        labels = (found.get(name) or {}).get("Labels") or {}
        service = entry.service if entry else str(labels.get(SERVICE_LABEL, "?"))
        credential = entry.credential if entry else str(labels.get(CREDENTIAL_LABEL, "?"))
        raw_generation = labels.get(GENERATION_LABEL)
        generation = entry.generation if entry else (int(str(raw_generation)) if str(raw_generation).isdigit() else None)
        record = SecretOnManager(
            name=name,
            service=service,
            credential=credential,
            generation=generation,
            declared=entry is not None,
            current=entry is not None and entry.current,
            present=name in found,
            used_by=users.get(name, ()),
        )
        secrets.append(record)
        if record.state == "missing" and record.current:
            problems.append(
                f"{name} (current generation of {service} {credential}) is not on the manager; deploy the stack (cdktf deploy {config.stack})"
            )
        if not record.current and record.used_by:
            newer = current.get((service, credential))
            for user in record.used_by:
                moves.append(_move_line(user, name, newer, f"{service}_{credential}"))
    problems += moves
    return SwarmReport(stack=config.stack, manager=engine.description, secrets=tuple(secrets), moves=tuple(moves), problems=tuple(problems))
