"""`nndb upgrade <stack> <instance> --image REF`: change an instance's image safely (thin over ``operations.upgrade``).

A proven backup first, then the config names the new image and the stack is applied (``cdktf deploy``
by default, ``--apply-command`` otherwise); if the instance does not answer on the same data within
``--wait-timeout``, the previous image is put back and applied again, and the command ends with one
line and exit 16. A major version change is refused unless ``--path`` chooses how
(docs/runbooks/upgrade-image.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import DEFAULT_CONNECT_TIMEOUT_S, build_context, configure_logging, console
from nexanest_db.commands.hooks import MIN_TIMEOUT_S, BackupDir, ConnectTimeout, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.commands.progress import Steps
from nexanest_db.config_edit import image_edit
from nexanest_db.context import HookContext
from nexanest_db.engine import Engine
from nexanest_db.errors import UpgradeError, UsageError
from nexanest_db.operations.upgrade import (
    DEFAULT_APPLY_COMMAND,
    RUNBOOK,
    CommandApplier,
    UpgradeReport,
    apply_argv,
    inspect_image,
    kind_of,
    plan_upgrade,
    short_id,
    upgrade,
)
from nexanest_db.operations.upgrade_major import LiveMajorInstance, dump_restore, dump_restore_steps
from nexanest_db.readiness import targets_for


class UpgradePath(StrEnum):
    dump_restore = "dump-restore"
    pg_upgrade = "pg-upgrade"


Instance = Annotated[str, typer.Argument(help="postgres, timescale or redis")]
Image = Annotated[str, typer.Option("--image", help="the new image, e.g. postgres:15.8 or postgres@sha256:<digest> (prod: by digest)")]
MajorPath = Annotated[
    UpgradePath | None,
    typer.Option("--path", help="how a major version change is made: dump-restore or pg-upgrade (docs/runbooks/upgrade-image.md)"),
]
WaitTimeout = Annotated[
    float | None,
    typer.Option(
        "--wait-timeout",
        min=MIN_TIMEOUT_S,
        help="seconds the new container may take to answer before the previous image is put back (default: healthcheck.deploy_wait_timeout_s)",
    ),
]
ApplyCommand = Annotated[
    str,
    typer.Option("--apply-command", help="what applies the stack, run in the project root without a shell; {stack} is the stack's name"),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="check the versions and say exactly what would happen; change nothing")]


def upgrade_command(
    stack: Stack,
    instance: Instance,
    image: Image,
    path: MajorPath = None,
    wait_timeout: WaitTimeout = None,
    apply_command: ApplyCommand = DEFAULT_APPLY_COMMAND,
    dry_run: DryRun = False,
    backup_dir: BackupDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT_S,
    project_dir: ProjectDir = None,
) -> None:
    """Change an instance's image: proven backup, apply, bounded wait, and the previous image put back if it fails.

    Examples:

      nndb upgrade staging-db postgres --image postgres@sha256:<digest> --dry-run

      nndb upgrade local-db postgres --image postgres:15.8 --wait-timeout 120

      nndb upgrade local-db postgres --image postgres:16 --path dump-restore

    Runbook: docs/runbooks/upgrade-image.md. Exit 16 when refused, or when the new image did not come up and the previous one was put back.
    """
    kind = kind_of(instance)
    resolved = resolve(stack, project_dir)
    config = resolved.config
    paths = resolved.paths
    if paths.config_dir.resolve() != (paths.root / "config").resolve():
        raise UsageError(
            f"{stack}: the config in use is {paths.config_dir} (NNDB_CONFIG_DIR), a stack directory's copy: "
            f"run nndb upgrade from the project checkout, whose config/ it edits"
        )
    current = config.instance(instance).image
    edit = image_edit(stack, paths.config_dir, instance=instance, image=image)  # the new config, checked now
    engine = Engine.for_config(config, ssh_host_override=resolved.endpoints.db_host_override)
    target = next(t for t in targets_for(config, resolved.endpoints.for_instance) if t.instance == instance)
    limit = wait_timeout if wait_timeout is not None else float(config.healthcheck.deploy_wait_timeout_s)
    applier = CommandApplier(argv=apply_argv(apply_command, stack), cwd=paths.root, environ=resolved.tool_environ)

    def open_context() -> HookContext:
        return build_context(
            resolved, logger=configure_logging(False), backup_dir=backup_dir, connect_timeout_s=connect_timeout, run_lock=False
        )

    live = LiveMajorInstance(instance=instance, container=target.container, engine=engine, target=target, open_context=open_context)
    steps = Steps()
    with steps.step(f"upgrade {instance}: versions of the running server and of {image}"):
        from_major = live.server_major()
        new = inspect_image(engine, image, kind)
    running = live.running_image_id()
    if image == current:
        if running == new.image_id:
            set_result({"stack": stack, "instance": instance, "outcome": "up to date", "image": image, "image_id": new.image_id})
            console.print(f"{stack}: {instance}: already runs {image} ({short_id(new.image_id)}); nothing to do", markup=False)
            return
        raise UpgradeError(
            f"{stack}: {instance}: {edit.path} already names {image}, but {target.container} runs image {short_id(running)}: "
            f"deploy the stack to make it follow the config (runbook section 2), or give the image to move to; nothing was changed"
        )
    plan = plan_upgrade(
        stack=stack,
        instance=instance,
        from_image=current,
        to_image=image,
        from_major=from_major,
        new=new,
        path=path.value if path is not None else None,
    )
    versions = f"{plan.from_major} -> {new.major} ({new.source})"
    if plan.path == "pg-upgrade":
        raise UpgradeError(
            f"{stack}: {instance}: --path pg-upgrade is done by hand ({RUNBOOK}#pg_upgrade-by-hand): pg_upgrade needs both "
            f"majors' binaries in one container, which the official images do not have; or use --path dump-restore; nothing was changed"
        )
    if plan.major_change:
        lines = dump_restore_steps(plan, apply=applier.description, wait_timeout_s=limit, config_file=edit.path)
    else:
        lines = plan.steps(apply=applier.description, wait_timeout_s=limit, config_file=edit.path)
    if dry_run:
        set_result(
            {"stack": stack, "instance": instance, "dry_run": True, "from_image": current, "to_image": image, "steps": lines}
            | {"from_major": plan.from_major, "to_major": new.major, "to_image_id": new.image_id}
        )
        console.print(f"{stack}: {instance}: would upgrade {current} -> {image} (major {versions}):", markup=False)
        console.print("\n".join(lines), markup=False)
        return

    def keep(report: UpgradeReport) -> None:
        set_result(report.as_dict() | {"dry_run": False})

    console.print(f"{stack}: {instance}: upgrading {current} -> {image} (major {versions})", markup=False)
    if plan.major_change:
        report, directory, aside = dump_restore(
            plan, instance=live, applier=applier, config=edit, wait_timeout_s=limit, progress=steps, on_report=keep
        )
        assert report.after is not None
        steps.summary(
            f"{stack}: {instance}: upgraded to {image} (PostgreSQL {new.major}) by dump and restore; every table has its row count "
            f"({report.after.summary()}); {edit.path} names it: commit that line; the old data directory stays as {aside} on "
            f"volume {directory.volume}: once satisfied, remove it: docker run --rm -v {directory.volume}:{directory.mount} "
            f"--entrypoint rm {image} -rf {aside}"
        )
        return
    report = upgrade(plan, instance=live, applier=applier, config=edit, wait_timeout_s=limit, progress=steps, on_report=keep)
    assert report.after is not None
    steps.summary(
        f"{stack}: {instance}: upgraded to {image} ({short_id(new.image_id)}); it answers on the same data ({report.after.summary()}); "
        f"{edit.path} names it: commit that line; backups taken first: {', '.join(report.backups) or 'none'}"
    )
