"""`nndb secrets`: check the tier's credentials, feed them to Terraform, log a Terraform Cloud run in to Vault.

Only ``terraform-external`` ever writes a value, and only to stdout, which
Terraform's external data source reads into state (marked sensitive by the
stack); it writes only the secrets Terraform uses, never the backup key.
Everything else reports where a secret is looked up and whether it is there.
See docs/secrets.md.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, TextIO

import typer

from nexanest_db import edge
from nexanest_db.commands import common
from nexanest_db.commands.common import resolve
from nexanest_db.commands.output import console, is_json, set_result
from nexanest_db.errors import SecretsError
from nexanest_db.secrets import (
    CredentialSource,
    catalogue_from_query,
    check_all,
    replicated_from_query,
    required_secret_names,
    resolve_all,
    secrets_config_from_query,
    source_for,
    tls_from_query,
)

app = typer.Typer(help="Check credentials and hand them to Terraform (values never printed).", no_args_is_help=True)

StackArg = Annotated[str, typer.Argument(help="local-db, dev-db, staging-db or prod-db")]

DEFAULT_JWT_MOUNT = "jwt"
TFC_LOGIN_TIMEOUT_S = 10.0


@app.command("check")
def check(stack: StackArg) -> None:
    """Resolve every secret the environment needs as a deploy would (TLS ones only with tls.enabled); present or missing, never the value.

    Examples: `nndb secrets check local-db`, `VAULT_ADDR=https://vault:8200 nndb secrets check prod-db --json`.
    """
    resolved = resolve(stack)
    source = resolved.credentials()
    statuses = check_all(source, required_secret_names(resolved.config))
    problems = list(dict.fromkeys(s.problem for s in statuses if s.problem))
    missing = [s.name for s in statuses if not s.present]
    set_result(
        {
            "stack": stack,
            "source": _origin(source),
            "secrets": [{"name": s.name, "present": s.present, "location": s.location} for s in statuses],
            "missing": missing,
            "problems": problems,
        }
    )
    console.print(f"{stack}: secrets from {_origin(source)}", markup=False)
    width = max(len(s.name) for s in statuses)
    console.print(f"{'secret'.ljust(width)}  {'status':7}  location", markup=False)
    for status in statuses:
        console.print(f"{status.name.ljust(width)}  {'present' if status.present else 'missing':7}  {status.location}", markup=False)
    if not missing:
        console.print(f"all {len(statuses)} secrets present", markup=False)
        return
    if len(problems) == 1 and len(missing) > 1:
        raise SecretsError(problems[0])  # one cause for all of them (Vault down, login refused): say it once
    for problem in problems:
        console.print(f"problem: {problem}", markup=False)
    raise SecretsError(
        f"{resolved.config.environment}: {len(missing)} of {len(statuses)} secrets missing ({', '.join(missing)}); "
        f"fix them and re-run `nndb secrets check {stack}`"
    )


@app.command("terraform-external")
def terraform_external(stack: StackArg) -> None:
    """Program of the stack's data "external" "secrets": JSON query on stdin, the stack's secrets as JSON on stdout.

    Only the secrets Terraform uses are resolved and printed (``required_secret_names(...,
    terraform_only=True)``: the server TLS pairs only when the query says ``tls = enabled``, a
    replication secret only when its instance is in the query's ``replicas``); the backup
    encryption key never enters Terraform state.

    Terraform runs it at plan time from cdktf.out/stacks/<stack>/; on failure it
    prints one line on stderr and exits non-zero, which stops the plan before
    any resource changes. With ``--json`` the same mapping is the ``result`` of the document.

    Example (what Terraform runs): `echo '{}' | nndb secrets terraform-external local-db`.
    """
    query = _read_query(sys.stdin, stack)
    secrets_config = secrets_config_from_query(stack, query)
    source: CredentialSource
    if secrets_config is None:
        resolved = resolve(stack)
        source = resolved.credentials()
        names = required_secret_names(resolved.config, terraform_only=True)
    else:
        # The query carries the secrets config: no project files needed (a Terraform Cloud agent has only the stack directory).
        # Its services' secrets too: the query lists them unless they are the three legacy ones (catalogue_from_query).
        catalogue = catalogue_from_query(stack, query)
        source = source_for(stack.removesuffix("-db"), secrets_config, _environment_here(), catalogue)
        names = required_secret_names(
            tls=tls_from_query(stack, query),
            replicated=replicated_from_query(stack, query),
            terraform_only=True,
            catalogue=catalogue,
        )
    values = resolve_all(source, names)
    if is_json():
        set_result({name: value.get_secret_value() for name, value in values.items()})
        return
    json.dump({name: value.get_secret_value() for name, value in values.items()}, sys.stdout)
    sys.stdout.write("\n")


@app.command("tfc-login")
def tfc_login() -> None:
    """Terraform Cloud agent pre-plan hook: JWT login with the run's workload identity, VAULT_TOKEN into $TFC_AGENT_ENV.

    Example (hooks/terraform-pre-plan): `nndb secrets tfc-login`.
    """
    from pydantic import SecretStr

    from nexanest_db.secrets.vault import VaultEndpoint, jwt_login

    environ = common.environ()  # the agent starts this command with the run's environment
    label = f"terraform cloud run ({environ.get('TFC_WORKSPACE_NAME') or 'unknown workspace'})"
    identity = environ.get("TFC_WORKLOAD_IDENTITY_TOKEN")
    if not identity:
        raise SecretsError(
            f"{label}: TFC_WORKLOAD_IDENTITY_TOKEN is not set; "
            "set the workspace variable TFC_WORKLOAD_IDENTITY_AUDIENCE so the run gets one"
        )
    role = environ.get("NNDB_VAULT_JWT_ROLE")
    if not role:
        raise SecretsError(f"{label}: NNDB_VAULT_JWT_ROLE is not set; set it on the workspace to the Vault JWT role for this workspace")
    agent_env = environ.get("TFC_AGENT_ENV")
    if not agent_env:
        raise SecretsError(f"{label}: TFC_AGENT_ENV is not set; tfc-login runs as a Terraform Cloud agent hook (hooks/terraform-pre-plan)")
    mount = environ.get("NNDB_VAULT_JWT_MOUNT") or DEFAULT_JWT_MOUNT
    endpoint = VaultEndpoint.from_environ(environment=label, environ=environ, timeout_s=TFC_LOGIN_TIMEOUT_S)
    login = jwt_login(endpoint, mount=mount, role=role, jwt=SecretStr(identity))
    try:
        with open(agent_env, "a", encoding="utf-8") as handle:
            handle.write(f"VAULT_TOKEN={login.token.get_secret_value()}\n")
    except OSError as exc:
        raise SecretsError(
            f"{label}: cannot append to $TFC_AGENT_ENV ({agent_env}: {exc.strerror}); check the agent's hook setup"
        ) from None
    policies = ", ".join(login.policies) or "none"
    set_result({"endpoint": endpoint.label, "role": role, "mount": mount, "ttl_s": login.ttl_s, "policies": list(login.policies)})
    console.print(
        f"nndb: logged in to {endpoint.label} with JWT role {role!r} at auth/{mount} "
        f"(ttl {login.ttl_s}s, policies: {policies}); VAULT_TOKEN handed to this run",
        markup=False,
    )


def _origin(source: CredentialSource) -> str:
    from nexanest_db.secrets.vault import VaultSource

    if isinstance(source, VaultSource):
        return f"{source.endpoint.label}, auth {source.auth}"
    return "the environment (.env.db and *_FILE variables included)"


def _environment_here() -> dict[str, str]:
    """For terraform-external without a project: the process environment over the nearest ``.env.db``."""
    return edge.environment_near(environ=common.environ(), start=common.start())


MAX_QUERY_CHARS = 1 << 20  # the query is a few hundred bytes; never read an endless stdin


def _read_query(stream: TextIO, stack: str) -> dict[str, object]:
    """Terraform sends the query as one JSON object on stdin; by hand at a terminal there is none."""
    if stream.isatty():
        return {}
    try:
        text = stream.read(MAX_QUERY_CHARS + 1)
    except UnicodeDecodeError:
        text = None
    if text is None or len(text) > MAX_QUERY_CHARS:
        raise SecretsError(f"{stack}: stdin is not the JSON object Terraform's external data source sends (binary or too large)")
    if not text.strip():
        return {}
    try:
        query = json.loads(text)
    except json.JSONDecodeError:
        query = None
    if not isinstance(query, dict):
        raise SecretsError(
            f"{stack}: stdin is not the JSON object Terraform's external data source sends; "
            "run this only as the stack's data source program"
        )
    return query
