"""The query of the stack's ``data "external" "secrets"`` source, and reading it back in ``nndb secrets terraform-external``.

How the values reach Terraform without entering ``cdk.tf.json`` is described in docs/secrets.md:
the data source runs ``nndb secrets terraform-external <stack>`` with ``external_query(...)`` as
its query, which carries the (non-secret) secrets config so the program needs no project files on
a Terraform Cloud agent. The query names no value, only where values are looked up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import ValidationError

from nexanest_db.config import INSTANCES, STACKS, EnvironmentConfig, SecretsConfig, check_env_var_name, check_service_name
from nexanest_db.errors import SecretsError
from nexanest_db.secrets.catalogue import DEFAULT_CATALOGUE, Catalogue, ServiceSecrets, build_catalogue, catalogue_for

_SERVICE_FIELDS = ("service", "readonly", "db_password_env", "readonly_password_env", "redis_password_env")


def external_query(config: EnvironmentConfig) -> dict[str, str]:
    """The ``query`` of the stack's ``data "external" "secrets"``: the stack name and its secrets config (no values).

    Terraform Cloud uploads only ``cdktf.out/stacks/<stack>/``, so the program
    must not need ``config/`` to know where the secrets live; carrying the
    (reviewable) references in the query also makes a pinned-version bump
    show up in the PR diff of ``cdk.tf.json``. ``services`` (the services' secret names and
    variables) is there only when they differ from the three a stack served before services came
    from config: absent means those, so the synthesized JSON of such stacks stays as it was.
    """
    query = {"stack": config.stack, "secrets": config.secrets.model_dump_json(exclude_none=True)}
    if config.tls.enabled:  # absent means off: the queries of stacks without TLS stay as they were
        query["tls"] = "enabled"
    if config.replicated_instances:  # absent means none, as for tls
        query["replicas"] = ",".join(config.replicated_instances)
    catalogue = catalogue_for(config)
    if not catalogue.legacy:
        query["services"] = json.dumps([s.as_dict() for s in catalogue.services], separators=(",", ":"))
    return query


def tls_from_query(stack: str, query: Mapping[str, object]) -> bool:
    """Whether ``external_query`` marked the stack's TLS as enabled (its server certificates are then Terraform's too)."""
    raw = query.get("tls")
    if raw is None:
        return False
    if raw != "enabled":
        raise SecretsError(f"{stack}: query field 'tls' must be 'enabled' or absent; re-synthesize (cdktf synth)")
    return True


def replicated_from_query(stack: str, query: Mapping[str, object]) -> tuple[str, ...]:
    """The instances ``external_query`` said have replicas (their replication secrets are then Terraform's)."""
    raw = query.get("replicas")
    if raw is None:
        return ()
    names = tuple(raw.split(",")) if isinstance(raw, str) else ()
    if not names or any(name not in INSTANCES for name in names) or len(set(names)) != len(names):
        raise SecretsError(
            f"{stack}: query field 'replicas' must list instances ({', '.join(INSTANCES)}) or be absent; re-synthesize (cdktf synth)"
        )
    return names


def catalogue_from_query(stack: str, query: Mapping[str, object]) -> Catalogue:
    """The catalogue ``external_query`` described: its ``services``, or the three legacy services when absent."""
    raw = query.get("services")
    if raw is None:
        return DEFAULT_CATALOGUE
    redo = "re-synthesize (cdktf synth)"
    try:
        entries = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        entries = None
    if not isinstance(entries, list) or not entries:
        raise SecretsError(f"{stack}: query field 'services' must be a JSON list of services; {redo}")
    services = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != set(_SERVICE_FIELDS) or not isinstance(entry["readonly"], bool):
            raise SecretsError(f"{stack}: query field 'services' has an entry that is not a service's secret names; {redo}")
        if not all(isinstance(entry[key], str) for key in _SERVICE_FIELDS if key != "readonly"):
            raise SecretsError(f"{stack}: query field 'services' has an entry that is not a service's secret names; {redo}")
        try:
            check_service_name(entry["service"])
            for key in _SERVICE_FIELDS[2:]:
                check_env_var_name(entry[key])
        except ValueError as exc:
            raise SecretsError(f"{stack}: query field 'services': {exc}; {redo}") from None
        services.append(ServiceSecrets(**entry))
    return build_catalogue(services, where=f"{stack}: query field 'services'", error=SecretsError)


def secrets_config_from_query(stack: str, query: Mapping[str, object]) -> SecretsConfig | None:
    """The secrets config ``external_query`` put into ``query``, or ``None`` when the query carries only the stack."""
    if stack not in STACKS:
        raise SecretsError(f"unknown stack {stack!r}: choose one of {', '.join(STACKS)}")
    if "stack" in query and query["stack"] != stack:
        raise SecretsError(
            f"{stack}: the data source query names stack {query['stack']!r}; re-synthesize (cdktf synth) so program and query agree"
        )
    raw = query.get("secrets")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SecretsError(f"{stack}: query field 'secrets' must be a JSON string; re-synthesize (cdktf synth)")
    try:
        return SecretsConfig.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        why = f"{where}: {why}" if where else why
        raise SecretsError(f"{stack}: query field 'secrets' is not a valid secrets config ({why}); re-synthesize (cdktf synth)") from None
