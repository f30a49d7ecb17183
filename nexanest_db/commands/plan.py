"""`nndb plan <stack>`: one report of what a merge would do, for a PR comment (thin over ``operations.plan``).

Markdown by default (``--output FILE`` writes it there), ``--json`` for machines: the schema is in
docs/pr-review.md. With ``--json`` an error is a JSON document on stdout too (``error``: message and
exit code), and the exit code is the same as without it.

Exit codes: 0 the report was produced (whatever it says: read its verdict); 2 usage or configuration
(unknown stack, a --base that names no commit, --plan-file missing); 13 the infrastructure changes
could not be computed (synth at the base or the working tree failed, terraform plan/show failed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from nexanest_db.commands.common import resolve
from nexanest_db.commands.hookrun import backup_dir_for, configure_logging
from nexanest_db.commands.hooks import AsJson, ConnectTimeout, ProjectDir, Stack
from nexanest_db.commands.output import set_result
from nexanest_db.context import HookContext
from nexanest_db.errors import NndbError, SecretsError, UsageError, first_few
from nexanest_db.operations.infra_changes import InfraChanges
from nexanest_db.operations.plan import (
    SCHEMA_VERSION,
    BaseRef,
    PlanReport,
    UnavailableSource,
    base_checkout,
    infra_from_base,
    infra_from_terraform,
    not_computed,
    resolve_base,
    show_plan,
    timed_report,
    why_not_plannable,
)
from nexanest_db.operations.plan_databases import DatabasePlan, plan_databases
from nexanest_db.secrets import CredentialSource, check_all, required_secret_names

DEFAULT_PLAN_CONNECT_TIMEOUT_S = 3.0
Base = Annotated[
    str | None,
    typer.Option("--base", help="git ref to compare with: a structural diff of the stack synthesized there and in the working tree"),
]
PlanFile = Annotated[
    Path | None, typer.Option("--plan-file", help="a saved `terraform plan -out` file of the stack to read (terraform show -json)")
]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="write the report (Markdown, or JSON with --json) to FILE")]

_ACTION_WORD = {"create": "add", "delete": "**destroy**", "replace": "**replace**", "update": "update in place", "move": "rename"}


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def _fence(text: str, language: str) -> list[str]:
    fence = "```" if "```" not in text else "~~~~"
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def _infra_lines(infra: InfraChanges) -> list[str]:
    lines = ["### Infrastructure", "", f"Source: {infra.detail}.", ""]
    if infra.source == "not-computed":
        return lines
    if not infra.resources:
        lines.append("No resource changes.")
    else:
        lines += ["| action | resource | changed attributes |", "| --- | --- | --- |"]
        for change in infra.resources:
            attributes = []
            for attribute in change.attributes:
                text = _code(attribute.path)
                notes = [
                    n
                    for n in (
                        "forces replacement" if attribute.forces_replacement else None,
                        f"via {attribute.via}" if attribute.via else None,
                    )
                    if n
                ]
                attributes.append(f"{text} ({', '.join(notes)})" if notes else text)
            if change.moved_from:
                attributes.insert(0, f"from {_code(change.moved_from)}")
            lines.append(f"| {_ACTION_WORD[change.action]} | {_code(change.address)} | {'<br>'.join(attributes) or '-'} |")
    if infra.other:
        lines += ["", "Also changed:", *[f"- {line}" for line in infra.other]]
    return lines


def _database_lines(databases: DatabasePlan) -> list[str]:
    lines = ["", "### Pending migrations", ""]
    if databases.note:
        lines += [f"> {databases.note}", ""]
    for service in databases.migrations:
        state = f"{len(service.pending)} pending" if service.pending else "up to date" if service.checked else "not checked"
        lines.append(f"- **{service.service}** ({service.subject}): {state}" + (f"; {service.note}" if service.note else ""))
        lines += [f"  - problem: {problem}" for problem in service.problems]
    for service in databases.migrations:
        for migration in service.pending:
            lines += [
                "",
                f"<details><summary>{service.service} {migration.label} {migration.description} ({migration.script})</summary>",
                "",
            ]
            lines += [*_fence(migration.sql, "sql"), "", "</details>"]
    lines += ["", "### Roles, grants and Redis ACLs", ""]
    if databases.unreachable:
        lines.append(f"Not computed for {', '.join(databases.unreachable)}: not reachable.")
    for name, objects in databases.privileges.items():
        lines.append(f"- privileges of **{name}** change on: {first_few(objects, 8)}")
    if databases.statements:
        lines += ["", "| subject | step |", "| --- | --- |"]
        lines += [f"| {s.subject} | {s.step} |" for s in databases.statements]
        lines += ["", "<details><summary>statements</summary>", ""]
        for kind, language in (("role", "sql"), ("grant", "sql"), ("redis-acl", "")):
            chosen = [s for s in databases.statements if s.kind == kind]
            if chosen:
                lines += _fence(
                    "\n".join(f"-- {s.subject}: {s.step}\n{s.statement}" if language else s.statement for s in chosen), language
                )
        lines += ["", "</details>"]
    elif not databases.unreachable:
        lines.append("None: roles, grants and ACL users are as the hooks would leave them.")
    lines += [f"- not computed: {problem}" for problem in databases.problems]
    return lines


def render_markdown(report: PlanReport) -> str:
    lines = [f"## nndb plan: {report.stack}", "", f"**Verdict:** {report.verdict.line}", ""]
    lines += _infra_lines(report.infra)
    lines += _database_lines(report.databases)
    lines += ["", "### Secrets", ""]
    missing = [s for s in report.secrets if not s.present]
    problems = list(dict.fromkeys(s.problem for s in missing if s.problem))
    if missing and len(missing) == len(report.secrets) and len(problems) == 1:
        lines.append(f"Not checked: {problems[0]}")  # one cause for all of them (no Vault here): said once
    else:
        lines.append(f"{len(report.secrets) - len(missing)} of {len(report.secrets)} present" + (", missing:" if missing else "."))
        lines += [f"- **{s.name}** missing: {s.problem}" for s in missing]
    stamp = report.generated_at.strftime("%Y-%m-%d %H:%M:%SZ")
    lines += ["", f"<sub>nndb plan {report.stack}, {stamp}, {report.seconds:.2f} s</sub>", ""]
    return "\n".join(lines)


def _error_document(stack: str, exc: NndbError) -> str:
    return json.dumps({"schema": SCHEMA_VERSION, "stack": stack, "error": {"message": str(exc), "exit_code": exc.exit_code}}, indent=2)


def _build(stack: str, *, project_dir: Path | None, base: str | None, plan_file: Path | None, connect_timeout: float) -> PlanReport:
    started = time.perf_counter()
    if base is not None and plan_file is not None:
        raise UsageError("--base and --plan-file are two sources of the same section: give one")
    resolved = resolve(stack, project_dir)
    root = resolved.paths.root
    stack_dir = root / "cdktf.out" / "stacks" / stack
    base_ref: BaseRef | None = resolve_base(root, base) if base is not None else None
    if plan_file is not None and not plan_file.is_file():
        raise UsageError(f"--plan-file {plan_file}: no such file; save one with `terraform plan -out=FILE` in {stack_dir}")
    credentials: CredentialSource
    try:
        credentials = resolved.credentials()
    except SecretsError as exc:  # e.g. no VAULT_ADDR here: report every secret missing and the databases unreachable
        credentials = UnavailableSource(environment=resolved.config.environment, problem=str(exc))
    context = HookContext(
        stack=stack,
        config=resolved.config,
        endpoints=resolved.endpoints,
        credentials=credentials,
        paths=resolved.paths,
        backup_dir=backup_dir_for(resolved, None),
        logger=configure_logging(False),
        connect_timeout_s=connect_timeout,
        run_lock=False,
    )
    try:
        secrets = check_all(credentials, required_secret_names(resolved.config))
        if base_ref is not None:
            with base_checkout(root, base_ref) as checkout:
                infra = infra_from_base(root, checkout, base_ref, stack, resolved.environ)
                databases = plan_databases(context, base_sql_dir=checkout / "sql", base_label=base_ref.label)
        else:
            if plan_file is not None:
                infra = show_plan(stack_dir, plan_file.resolve(), resolved.environ, detail=f"saved plan {plan_file}")
            elif (reason := why_not_plannable(stack_dir, resolved.environ)) is None:
                infra = infra_from_terraform(root, stack, resolved.environ)
            else:
                infra = not_computed(f"terraform plan not possible here: {reason}")
            databases = plan_databases(context)
    finally:
        context.close()
    return timed_report(stack=stack, infra=infra, databases=databases, secrets=secrets, base=base_ref, started=started)


def plan(
    stack: Stack,
    base: Base = None,
    plan_file: PlanFile = None,
    output: Output = None,
    project_dir: ProjectDir = None,
    connect_timeout: ConnectTimeout = DEFAULT_PLAN_CONNECT_TIMEOUT_S,
    as_json: AsJson = False,
) -> None:
    """What a merge would do to STACK: infrastructure, pending migrations with their SQL, roles/grants/ACLs, secrets, a verdict. Read-only.

    Exits 0 when the report was produced (read its verdict), 2 on a usage or config error, 13 when the
    infrastructure changes could not be computed. Examples: `nndb plan local-db`, `nndb plan dev-db --base origin/main -o plan.md`.
    """
    try:
        report = _build(stack, project_dir=project_dir, base=base, plan_file=plan_file, connect_timeout=connect_timeout)
    except NndbError:
        raise  # with --json the CLI's envelope carries the error (docs/cli.md)
    text = json.dumps(report.as_dict(), indent=2) if as_json else render_markdown(report)
    if as_json:
        set_result(report.as_dict())
    if output is None:
        if not as_json:
            print(text)
        return
    try:
        output.write_text(text + ("\n" if as_json else ""), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write ({exc.strerror}); give a writable path") from None
    print(f"plan {stack}: {report.verdict.line} (report in {output})", file=sys.stderr)
