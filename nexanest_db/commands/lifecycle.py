"""`nndb wait-ready` and `nndb before-destroy`: the steps Terraform runs around the containers.

Both are run by the stack itself (docs/deploy.md) and can be run by hand:

- ``wait-ready <stack>``: the first post-apply step. Returns once every database answers on its
  published port; otherwise one line naming the container, its state and its last log lines
  (exit 4). The bound: ``--timeout``, else ``NNDB_WAIT_READY_TIMEOUT_S`` (what ``nndb upgrade`` sets
  around its deploy, so the deploy waits no longer than ``--wait-timeout``), else the config's
  ``healthcheck.deploy_wait_timeout_s``.
- ``before-destroy <stack>``: the destroy guard's provisioner, which Terraform runs before it removes
  any container or data volume. Refuses (exit 8) unless ``[destroy] require_confirmation = false``
  or ``NNDB_CONFIRM_DESTROY=<stack>``; then takes a backup of every service database and proves it
  by a restore (``NNDB_DESTROY_WITHOUT_BACKUP=<stack>`` skips that, for a stack whose databases
  cannot answer any more). A failure stops the destroy with nothing removed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from nexanest_db.backups import Catalog, catalog_lock
from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import DEFAULT_CONNECT_TIMEOUT_S, build_context, configure_logging, console
from nexanest_db.commands.hooks import MIN_TIMEOUT_S, BackupDir, ConnectTimeout, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.commands.progress import Steps
from nexanest_db.engine import Engine
from nexanest_db.errors import BackupError, ConfigError, ConnectionFailed, DestroyRefused
from nexanest_db.operations.backup import take_and_verify
from nexanest_db.operations.upgrade import WAIT_READY_TIMEOUT_VARIABLE
from nexanest_db.readiness import targets_for, wait_ready

CONFIRM_VARIABLE = "NNDB_CONFIRM_DESTROY"
SKIP_BACKUP_VARIABLE = "NNDB_DESTROY_WITHOUT_BACKUP"

Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=MIN_TIMEOUT_S,
        help="seconds to wait, > 0 (default: NNDB_WAIT_READY_TIMEOUT_S, else healthcheck.deploy_wait_timeout_s of the stack's config)",
    ),
]


def _timeout_from(environ: dict[str, str], default: float) -> float:
    """``NNDB_WAIT_READY_TIMEOUT_S`` (``nndb upgrade`` bounds the deploy's wait by its ``--wait-timeout``), else ``default``."""
    raw = environ.get(WAIT_READY_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value >= MIN_TIMEOUT_S or value == float("inf"):
        raise ConfigError(f"{WAIT_READY_TIMEOUT_VARIABLE}={raw!r}: give the seconds to wait, a number > 0, or unset it")
    return value


def wait_ready_command(stack: Stack, project_dir: ProjectDir = None, timeout: Timeout = None) -> None:
    """Wait until PostgreSQL, TimescaleDB and Redis answer on their published ports (what a deploy waits for).

    Examples: `nndb wait-ready local-db`, `nndb wait-ready dev-db --timeout 300`.
    """
    resolved = resolve(stack, project_dir)
    config = resolved.config
    engine = Engine.for_config(config, ssh_host_override=resolved.endpoints.db_host_override)
    targets = targets_for(config, resolved.endpoints.for_instance)
    limit = timeout if timeout is not None else _timeout_from(resolved.environ, float(config.healthcheck.deploy_wait_timeout_s))
    steps = Steps()
    with steps.step(f"waiting for {', '.join(t.instance for t in targets)} of {stack} (up to {limit:.0f}s)"):
        readiness = wait_ready(targets, timeout_s=limit, engine=engine)
    answered = ", ".join(f"{t.instance} {t.where} {readiness.seconds[t.instance]:.1f}s" for t in targets)
    set_result(
        {
            "stack": stack,
            "instances": {t.instance: {"where": t.where, "seconds": readiness.seconds[t.instance]} for t in targets},
            "seconds": steps.elapsed(),
        }
    )
    console.print(f"ready {stack}: {answered} (in {steps.elapsed():.1f}s)", markup=False)


def before_destroy_command(
    stack: Stack,
    project_dir: ProjectDir = None,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Confirm the destroy and take a verified backup of every service database before anything is removed.

    Run by `cdktf destroy` (the destroy guard). Example by hand: `NNDB_CONFIRM_DESTROY=dev-db nndb before-destroy dev-db`.
    """
    resolved = resolve(stack, project_dir)
    environ = resolved.environ
    if resolved.config.destroy.require_confirmation and environ.get(CONFIRM_VARIABLE) != stack:
        raise DestroyRefused(
            f"{stack}: destroy not confirmed; its data volumes would be deleted: set {CONFIRM_VARIABLE}={stack} "
            f"to confirm (a verified backup is taken first), then run the destroy again; nothing was removed"
        )
    if environ.get(SKIP_BACKUP_VARIABLE) == stack:
        console.print(f"before-destroy {stack}: {SKIP_BACKUP_VARIABLE}={stack}: destroying WITHOUT a backup", markup=False)
        return
    context = build_context(
        resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
    )
    taken = 0
    steps = Steps()
    try:
        with catalog_lock(context.backup_dir):
            catalog = Catalog.load(context.backup_dir, stack)
            try:
                for service in context.services:
                    with steps.step(f"before-destroy {service.subject}: dump + restore to prove it"):
                        record, detail = take_and_verify(context, service, catalog)
                    taken += 1
                    console.print(f"  + {service.subject:<20} {record.id} proven by restore ({detail})", markup=False)
            finally:
                catalog.save()
    except (BackupError, ConnectionFailed) as exc:
        raise DestroyRefused(
            f"{stack}: no proven backup, destroy stopped with nothing removed: {exc} "
            f"(to destroy anyway, without a backup: {SKIP_BACKUP_VARIABLE}={stack})"
        ) from None
    finally:
        context.close()
    steps.summary(f"before-destroy {stack}: {taken} backups taken and proven by restore in {context.backup_dir}")
