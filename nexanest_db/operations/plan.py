"""``nndb plan <stack>``: what a merge would do, in one report (infrastructure, SQL, grants, secrets, verdict).

Infrastructure comes from one of three places, chosen by the caller (``commands/plan.py``):

* ``--base REF``: the stack synthesized at REF (``git archive`` into a temporary directory, removed
  afterwards) and in the working tree, each into its own temporary outdir, compared structurally
  (``operations.infra_changes.structural_diff``). Runs anywhere synth runs: no providers, no engine.
* ``--plan-file FILE``: ``terraform show -json`` of a saved plan, in ``cdktf.out/stacks/<stack>/``.
* neither: where the stack can be planned (a terraform binary and an initialized
  ``cdktf.out/stacks/<stack>/.terraform``), the working tree is synthesized (as ``cdktf diff``
  does) and ``terraform plan`` runs into a temporary, private plan file read back with
  ``show -json`` and deleted; otherwise the report says in one line why not.

The JSON form (``PlanReport.as_dict``, ``schema`` 1) is documented in docs/pr-review.md; change both together.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from nexanest_db.errors import PlanFailed, SecretsError, UsageError, first_few
from nexanest_db.operations.infra_changes import InfraChanges, Verdict, from_plan_json, structural_diff, verdict
from nexanest_db.operations.plan_databases import DatabasePlan
from nexanest_db.secrets import SecretStatus

SCHEMA_VERSION = 1
SYNTH_TIMEOUT_S = 300.0
TERRAFORM_TIMEOUT_S = 900.0


@dataclass(kw_only=True)
class UnavailableSource:
    """The credential source when the configured one cannot even be set up (no VAULT_ADDR on a CI runner):
    every secret is reported missing with that one reason, and the databases as not reachable, instead
    of the plan stopping. A plan is read by people who may not hold production credentials."""

    environment: str
    problem: str

    def get(self, name: str) -> SecretStr:
        raise SecretsError(self.problem)

    def describe(self, name: str) -> str:
        return f"{name} (source not available)"

    def previous(self, name: str) -> SecretStr | None:
        return None

    def previous_hint(self, name: str) -> str:
        return self.problem


@dataclass(frozen=True, kw_only=True)
class BaseRef:
    ref: str
    commit: str

    @property
    def label(self) -> str:
        return f"{self.ref} ({self.commit[:12]})"


@dataclass(kw_only=True)
class PlanReport:
    stack: str
    generated_at: datetime
    infra: InfraChanges
    databases: DatabasePlan
    secrets: list[SecretStatus]
    base: BaseRef | None = None
    seconds: float = 0.0
    verdict: Verdict = field(init=False)

    def __post_init__(self) -> None:
        self.verdict = overall_verdict(self.infra, self.databases, self.secrets)

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA_VERSION,
            "stack": self.stack,
            "generated_at": self.generated_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "seconds": round(self.seconds, 3),
            "base": None if self.base is None else {"ref": self.base.ref, "commit": self.base.commit},
            "verdict": self.verdict.as_dict(),
            "infrastructure": self.infra.as_dict(),
            "databases": self.databases.as_dict(),
            "secrets": [{"name": s.name, "present": s.present, "location": s.location, "problem": s.problem} for s in self.secrets],
            "error": None,
        }


def overall_verdict(infra: InfraChanges, databases: DatabasePlan, secrets: list[SecretStatus]) -> Verdict:
    """The infrastructure verdict, then what the hooks would do to the data, then what would stop the deploy."""
    base = verdict(infra)
    parts = [] if base.level == "none" and infra.source != "not-computed" else [base.line]
    level = base.level
    pending = databases.pending_count
    if pending:
        parts.append(f"applies {pending} pending migration{'s' if pending != 1 else ''}")
    roles = sum(1 for s in databases.statements if s.kind == "role")
    acls = sum(1 for s in databases.statements if s.kind == "redis-acl" and s.statement != "ACL SAVE")
    objects = sum(len(v) for v in databases.privileges.values())
    changes = []
    if roles:
        changes.append(f"runs {roles} role step{'s' if roles != 1 else ''}")
    if objects:
        changes.append(f"changes privileges on {objects} object{'s' if objects != 1 else ''} ({', '.join(databases.privileges)})")
    if acls:
        changes.append(f"changes {acls} Redis ACL user{'s' if acls != 1 else ''}")
    parts += changes
    if (pending or changes) and level == "none":
        level = "hooks"
    if databases.unreachable:
        parts.append("live databases not checked")
    missing = [s.name for s in secrets if not s.present]
    problems = {s.problem for s in secrets if s.problem}
    if missing and len(missing) == len(secrets) and len(problems) == 1:
        parts.append("secrets not checked (their source is not available here)")
    elif missing:
        shown = first_few(missing, 5)
        parts.append(f"{len(missing)} secret{'s' if len(missing) != 1 else ''} missing: the deploy would stop ({shown})")
    if not parts:
        return Verdict(level="none", line="no changes")
    return Verdict(level=level, line="; ".join(parts))


# --- git and synth ------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise UsageError("--base needs git on PATH (install git), or drop --base") from None


def resolve_base(root: Path, ref: str) -> BaseRef:
    """The commit ``ref`` names in the project's repository; a usage error when it names none."""
    if ref.startswith("-"):
        raise UsageError(f"--base {ref}: not a git ref; give a branch, tag or commit, e.g. --base origin/main")
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0:
        raise UsageError(f"--base {ref}: {root} is not a git checkout; run nndb plan from the repository, or drop --base")
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if found.returncode != 0:
        raise UsageError(f"--base {ref}: no such commit in {root}; give a branch, tag or commit that exists (fetch it first in CI)")
    return BaseRef(ref=ref, commit=found.stdout.decode().strip())


@contextmanager
def base_checkout(root: Path, base: BaseRef) -> Iterator[Path]:
    """The project's committed files at ``base`` in a temporary directory (``git archive``), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="nndb-plan-base-"))
    try:
        archive = _git(root, "archive", "--format=tar", base.commit)
        if archive.returncode != 0:
            raise PlanFailed(f"--base {base.label}: git archive failed: {_last_line(archive.stderr)}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and paths that leave the directory
                tar.extractall(directory, filter="data")
            else:  # our own repository's archive
                tar.extractall(directory)  # noqa: S202
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _last_line(output: bytes | str) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """End a synth and everything it started (jsii runs a node process that would go on writing into scratch)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def synth_documents(sources: Mapping[str, Path], stack: str, environ: Mapping[str, str]) -> dict[str, dict[str, object] | None]:
    """``python main.py`` of each project directory (in parallel, each into its own temporary outdir): the stack's
    ``cdk.tf.json`` per source label, ``None`` where that tree has no such stack."""
    # Each outdir is <scratch>/cdktf.out: synth makes the local state files (../../../ of a stack
    # directory) private, creating them empty, so they must land in the scratch directory too.
    scratch = {label: Path(tempfile.mkdtemp(prefix=f"nndb-plan-{label.replace(' ', '-')}-")) for label in sources}
    outdirs = {label: directory / "cdktf.out" for label, directory in scratch.items()}
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for label, project in sources.items():
            if not (project / "main.py").is_file():
                raise PlanFailed(f"{label}: {project} has no main.py to synthesize")
            private_tmp = scratch[label] / "tmp"  # jsii's own temporary files go with the rest, even when killed
            private_tmp.mkdir()
            env = {**environ, "CDKTF_OUTDIR": str(outdirs[label]), "PYTHONPATH": str(project), "TMPDIR": str(private_tmp)}
            running[label] = subprocess.Popen(
                [sys.executable, "main.py"],
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: jsii's node child goes with it when killed
            )
        documents: dict[str, dict[str, object] | None] = {}
        for label, process in running.items():
            try:
                _, stderr = process.communicate(timeout=SYNTH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                process.communicate()
                raise PlanFailed(f"synth of {label} took over {SYNTH_TIMEOUT_S:.0f}s; run `python main.py` there to see why") from None
            if process.returncode != 0:
                raise PlanFailed(f"synth of {label} failed (exit {process.returncode}): {_last_line(stderr)}")
            path = outdirs[label] / "stacks" / stack / "cdk.tf.json"
            documents[label] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        return documents
    finally:
        for process in running.values():
            _kill_group(process)
        for directory in scratch.values():
            shutil.rmtree(directory, ignore_errors=True)


def infra_from_base(root: Path, checkout: Path, base: BaseRef, stack: str, environ: Mapping[str, str]) -> InfraChanges:
    documents = synth_documents({"base": checkout, "working tree": root}, stack, environ)
    old, new = documents["base"], documents["working tree"]
    if new is None:
        raise PlanFailed(f"synth of the working tree wrote no stack {stack}")
    detail = f"structural diff of cdktf.out/stacks/{stack}/cdk.tf.json: base {base.label} against the working tree"
    if old is None:
        detail += f" (the base has no stack {stack}: everything is new)"
    return structural_diff(old or {}, new, detail=detail)


# --- terraform ----------------------------------------------------------------------------------


def terraform_binary(environ: Mapping[str, str]) -> str | None:
    path = environ.get("PATH")
    for name in (environ.get("TERRAFORM_BINARY_NAME"), "terraform", "tofu"):
        if name and (found := shutil.which(name, path=path)):
            return found
    return None


def why_not_plannable(stack_dir: Path, environ: Mapping[str, str]) -> str | None:
    """``None`` when ``terraform plan`` can run in ``stack_dir``; else one line saying why not."""
    if terraform_binary(environ) is None:
        return "no terraform or tofu on PATH"
    if not (stack_dir / ".terraform").is_dir():
        return f"{stack_dir.name} is not initialized here (no cdktf.out/stacks/{stack_dir.name}/.terraform: `cdktf diff` or a deploy does that)"
    return None


def _terraform(binary: str, stack_dir: Path, args: list[str], environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    try:
        return subprocess.run(
            [binary, *args], cwd=stack_dir, env=env, capture_output=True, text=True, timeout=TERRAFORM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise PlanFailed(f"`{Path(binary).name} {args[0]}` in {stack_dir} took over {TERRAFORM_TIMEOUT_S:.0f}s") from None


def show_plan(stack_dir: Path, plan_file: Path, environ: Mapping[str, str], *, detail: str) -> InfraChanges:
    binary = terraform_binary(environ)
    if binary is None:
        raise PlanFailed("reading a saved plan needs terraform or tofu on PATH")
    shown = _terraform(binary, stack_dir, ["show", "-json", "-no-color", str(plan_file)], environ)
    if shown.returncode != 0:
        raise PlanFailed(f"`{Path(binary).name} show -json {plan_file}` failed: {_last_line(shown.stderr)}")
    try:
        document = json.loads(shown.stdout)
    except json.JSONDecodeError:
        raise PlanFailed(f"`{Path(binary).name} show -json {plan_file}` printed no JSON document") from None
    return from_plan_json(document, detail=detail)


def infra_from_terraform(root: Path, stack: str, environ: Mapping[str, str]) -> InfraChanges:
    """Synthesize the working tree into cdktf.out (as ``cdktf diff`` does), plan into a private temporary file, read it, delete it."""
    stack_dir = root / "cdktf.out" / "stacks" / stack
    binary = terraform_binary(environ)
    assert binary is not None
    synth = subprocess.run(
        [sys.executable, "main.py"],
        cwd=root,
        env={**environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT_S,
        check=False,
    )
    if synth.returncode != 0:
        raise PlanFailed(f"synth of the working tree failed (exit {synth.returncode}): {_last_line(synth.stderr)}")
    with tempfile.TemporaryDirectory(prefix="nndb-plan-tf-") as private:  # 0700: a plan file holds secret values
        plan_file = Path(private) / f"{stack}.tfplan"
        planned = _terraform(binary, stack_dir, ["plan", "-input=false", "-lock=false", "-no-color", f"-out={plan_file}"], environ)
        if planned.returncode != 0:
            raise PlanFailed(f"`{Path(binary).name} plan` of {stack} failed: {_last_line(planned.stderr)}")
        return show_plan(stack_dir, plan_file, environ, detail=f"`{Path(binary).name} plan` of cdktf.out/stacks/{stack} against its state")


def not_computed(reason: str) -> InfraChanges:
    return InfraChanges(source="not-computed", detail=f"{reason}; pass --base REF for a structural diff of the synthesized stack")


def timed_report(
    *, stack: str, infra: InfraChanges, databases: DatabasePlan, secrets: list[SecretStatus], base: BaseRef | None, started: float
) -> PlanReport:
    report = PlanReport(stack=stack, generated_at=datetime.now(UTC), infra=infra, databases=databases, secrets=secrets, base=base)
    report.seconds = time.perf_counter() - started
    return report
