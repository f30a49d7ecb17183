"""`nndb swarm secrets <stack>`: the stack's Docker secrets on the Swarm manager, and who still uses an old generation.

Thin over ``nexanest_db.operations.swarm``; read-only (names and labels, never a secret's content).
"""

from __future__ import annotations

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hooks import AsJson, ProjectDir, Stack
from nexanest_db.commands.output import console, set_result
from nexanest_db.errors import SwarmError
from nexanest_db.operations.swarm import inventory

app = typer.Typer(
    help="The Swarm hand-off: services' credentials published as Docker secrets (docs/secrets.md#swarm-secrets).", no_args_is_help=True
)


@app.command("secrets")
def secrets(stack: Stack, project_dir: ProjectDir = None, as_json: AsJson = False) -> None:
    """List the stack's Docker secrets on the Swarm manager: current, kept, missing, retired, and the services mounting each.

    Exit 0 when the hand-off is complete (every current generation is there and no service mounts an older one); 17 with a `docker service update` line per service still to move.

    Examples: `nndb swarm secrets staging-db`, `nndb swarm secrets staging-db --json`.
    """
    resolved = resolve(stack, project_dir)
    report = inventory(resolved.config)
    set_result(
        {
            "stack": stack,
            "manager": report.manager,
            "secrets": [
                {
                    "name": s.name,
                    "service": s.service,
                    "credential": s.credential,
                    "generation": s.generation,
                    "state": s.state,
                    "used_by": list(s.used_by),
                }
                for s in report.secrets
            ],
            "moves": list(report.moves),
            "problems": list(report.problems),
        }
    )
    console.print(f"{stack}: Docker secrets on the Swarm manager {report.manager}", markup=False)
    width = max(len(s.name) for s in report.secrets)
    console.print(f"{'secret'.ljust(width)}  {'state':8}  used by", markup=False)
    for s in report.secrets:
        console.print(f"{s.name.ljust(width)}  {s.state:8}  {', '.join(s.used_by) or '-'}", markup=False)
    if report.complete:
        console.print("hand-off complete: every service uses the current generation", markup=False)
        return
    for problem in report.problems:
        console.print(f"problem: {problem}", markup=False)
    raise SwarmError(
        f"{stack}: Swarm hand-off incomplete ({len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}); "
        f"fix them and re-run `nndb swarm secrets {stack}`"
    )
