"""`nndb failover <stack> <instance> --to <replica>`: move the primary role (thin over ``operations.replication``).

``--planned`` is a switchover (the primary is up: writes stop, the replica catches up, no committed
transaction is lost); without it, a failover (the primary is gone), refused while the primary still
answers. Afterwards the config names the new primary (``[replication.<instance>] primary``), which
re-points the stack's endpoint for every later command and deploy: commit that one-line change.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import build_context, configure_logging, console
from nexanest_db.commands.hooks import AsJson, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.config import config_file_for
from nexanest_db.config_edit import set_primary
from nexanest_db.errors import FailoverError, UsageError
from nexanest_db.operations.replication import MoveReport, failover, node_state, switchover
from nexanest_db.operations.replication_nodes import build_node, node_addresses
from nexanest_db.roles import SUPERUSER_SECRETS

Instance = Annotated[str, typer.Argument(help="postgres or timescale")]
To = Annotated[str, typer.Option("--to", help="the replica to promote (a name under [replication.<instance>.replicas])")]
Planned = Annotated[bool, typer.Option("--planned", help="switchover: the primary is up; wait for the replica, lose nothing")]
PrimaryIsDown = Annotated[
    bool, typer.Option("--primary-is-down", help="the primary's host is down for sure: do not insist on fencing it through its engine")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="say exactly what would happen; change nothing")]
CatchUp = Annotated[float, typer.Option("--catch-up-timeout", min=1, help="seconds the replica may take to catch up (--planned)")]
ConnectTimeout = Annotated[float, typer.Option("--connect-timeout", min=1, help="seconds to wait for each server")]


def _plan_lines(*, planned: bool, primary: str, target: str, config_file: str, instance: str) -> list[str]:
    if planned:
        steps = [
            f"check that {primary} is the primary and {target} a standby streaming from it",
            f"stop writes on {primary}: new transactions read-only, every client session ended",
            f"wait until {target} has replayed {primary}'s last WAL position (else: give up, {primary} takes writes again)",
            f"fence {primary}: docker update --restart=no, docker stop",
            f"promote {target} and check it takes writes",
        ]
    else:
        steps = [
            f"check that {target} is a standby and that {primary} does not answer (else: refused, use --planned)",
            f"fence {primary}: docker update --restart=no, docker stop (refused if it still answers afterwards)",
            f"promote {target} and check it takes writes (WAL it had not received is lost)",
        ]
    steps.append(f'write [replication.{instance}] primary = "{target}" into {config_file}: the stack\'s endpoint follows it')
    return [f"{number}. {step}" for number, step in enumerate(steps, 1)]


def failover_command(
    stack: Stack,
    instance: Instance,
    to: To,
    planned: Planned = False,
    primary_is_down: PrimaryIsDown = False,
    dry_run: DryRun = False,
    catch_up_timeout: CatchUp = 30.0,
    connect_timeout: ConnectTimeout = 3.0,
    project_dir: ProjectDir = None,
    as_json: AsJson = False,
) -> None:
    """Promote a replica of a PostgreSQL/TimescaleDB instance; the old primary is fenced first.

    Examples:

      nndb failover prod-db postgres --to replica-1 --planned --dry-run

      nndb failover prod-db postgres --to replica-1 --planned     # switchover, no data loss

      nndb failover prod-db postgres --to replica-1               # the primary is gone

    Runbook: docs/runbooks/failover.md. Exit 15 when refused or stopped (the message says which node takes writes).
    """
    if planned and primary_is_down:
        raise UsageError("--planned and --primary-is-down contradict each other: a switchover needs the primary up")
    resolved = resolve(stack, project_dir)
    config = resolved.config
    addresses = node_addresses(config, instance, current_primary_endpoint=resolved.endpoints.for_instance(instance))
    current = config.replication[instance].primary  # type: ignore[index]
    if to not in addresses:
        raise UsageError(f"--to {to}: not a node of {instance} (known: {', '.join(addresses)})")
    if to == current:
        raise FailoverError(
            f"{to} is already the primary of {instance} in {config_file_for(stack, resolved.paths.config_dir)}; nothing to do"
        )
    config_file = config_file_for(stack, resolved.paths.config_dir)
    lines = _plan_lines(
        planned=planned,
        primary=addresses[current].describe(),
        target=addresses[to].describe(),
        config_file=str(config_file),
        instance=instance,
    )
    if dry_run:
        set_result({"dry_run": True, "kind": "switchover" if planned else "failover", "steps": lines})
        console.print(f"{stack}: {instance}: would {'switch over' if planned else 'fail over'} from {current} to {to}:", markup=False)
        console.print("\n".join(lines), markup=False)
        return

    context = build_context(resolved, logger=configure_logging(False), connect_timeout_s=connect_timeout, run_lock=False)
    try:
        password = context.password(SUPERUSER_SECRETS[instance])
        tls_kwargs = context.postgres.tls_kwargs()
    finally:
        context.close()
    superuser = config.instance(instance).superuser  # type: ignore[attr-defined]

    def node(name: str):  # type: ignore[no-untyped-def]
        return build_node(
            addresses[name],
            superuser=superuser,
            password=password,
            tls_kwargs=tls_kwargs,
            connect_timeout_s=connect_timeout,
            assume_down=primary_is_down and name == current,
        )

    def step(line: str, elapsed: float) -> None:
        console.print(f"[{elapsed:6.2f}s] {line}", markup=False)

    old, new = node(current), node(to)
    sql_dir = resolved.paths.sql_dir
    report: MoveReport
    if planned:
        report = switchover(old, new, sql_dir=sql_dir, catch_up_timeout_s=catch_up_timeout, on_step=step)
    else:
        if node_state(old, sql_dir).reachable:
            raise FailoverError(
                f"{addresses[current].describe()}: the primary still answers; use --planned for a switchover that loses nothing"
            )
        report = failover(old, new, sql_dir=sql_dir, on_step=step)
    written = set_primary(stack, resolved.paths.config_dir, instance=instance, node=to)
    endpoint = addresses[to].endpoint
    followers = [name for name in addresses if name not in (current, to)]
    notes = [
        f'{written}: [replication.{instance}] primary = "{to}"; commit it (the stack\'s endpoint is now {endpoint.host}:{endpoint.port})'
    ]
    if followers:
        notes.append(
            f"{', '.join(followers)} still follow{'s' if len(followers) == 1 else ''} {current}: "
            f"`cdktf deploy {stack}` points {'it' if len(followers) == 1 else 'them'} at {to}"
        )
    if config.backup.pitr:
        notes.append(f"point-in-time recovery follows the old primary: run `nndb backup pitr setup {stack}` now")
    set_result(
        {
            "dry_run": False,
            "kind": report.kind,
            "old_primary": current,
            "new_primary": to,
            "steps": [{"step": line, "elapsed_s": round(elapsed, 3)} for line, elapsed in report.steps],
            "write_unavailable_s": None if report.write_unavailable_s is None else round(report.write_unavailable_s, 3),
            "config_file": str(written),
            "notes": notes,
        }
    )
    outage = f"; writes unavailable {report.write_unavailable_s:.2f} s" if report.write_unavailable_s is not None else ""
    console.print(f"{stack}: {instance}: {report.kind} from {current} to {to} done{outage}", markup=False)
    for note in notes:
        console.print(f"  {note}", markup=False)
