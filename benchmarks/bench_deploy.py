"""`cdktf deploy local-db` from nothing to answering databases with the hooks done, against a floor (target <= 2x).

Floor, measured in the same run on the same engine: `docker run` of the same three images (started
together) until PostgreSQL answers a ping (`pg_isready`'s check) and Redis answers PING, plus one
`nndb hooks run` against them. Then, on a copy of the project (unique names, free ports, the stand-in
images), the commands a user types: `cdktf deploy local-db` from nothing, again with nothing to do,
again after a postgresql.conf change, and `cdktf destroy local-db` (which takes verified backups first).

Needs the deploy toolchain: run it after `. <tools>/env.sh` (scripts/bootstrap.sh writes it), with the
providers available (registry or mirror) and the stand-in images built.

    python benchmarks/bench_deploy.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nexanest_db.config import HostPort  # noqa: E402
from nexanest_db.readiness import postgres_answers, redis_answers  # noqa: E402
from tests.fixtures.toolchain import Toolchain  # noqa: E402
from tests.support.deploy import ANSI, DeployedCopy, docker, passwords  # noqa: E402
from tests.support.local_servers import free_port  # noqa: E402
from tests.support.project import copy_project  # noqa: E402
from tests.support.standins import point_at_standins, standins  # noqa: E402

TARGET_RATIO = 2.0


def toolchain() -> Toolchain:
    missing = [name for name in ("TERRAFORM_BINARY_NAME", "TF_CLI_CONFIG_FILE") if not os.environ.get(name)]
    if missing or os.environ.get("NNDB_PROVIDERS_READY") != "1":
        sys.exit(f"bench_deploy: source <tools>/env.sh first (scripts/bootstrap.sh); missing {missing or 'providers'}")
    environ = dict(os.environ)
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    terraform = os.environ.get("NNDB_TF_BINARY") or shutil.which(os.environ["TERRAFORM_BINARY_NAME"]) or ""
    return Toolchain(terraform=terraform, cdktf=ROOT / "node_modules" / ".bin" / "cdktf", environ=environ)


def floor(workdir: Path, tools: Toolchain) -> tuple[float, float]:
    """(seconds until all three answer after `docker run`, seconds of one `nndb hooks run`)."""
    prefix = f"nndb-bench-floor-{uuid.uuid4().hex[:8]}"
    images = {s.context: s.tag for s in standins()}
    secret = passwords("bench-floor")
    ports = {"postgres": free_port(), "timescale": free_port(), "redis": free_port()}
    project = copy_project(workdir / "floor-project")
    config = project / "config" / "local.toml"
    config.write_text(point_at_standins(config.read_text()))
    # The Redis ACL file (the hooks' ACL SAVE needs one) goes in with `docker cp`, before the start.
    import hashlib

    acl = workdir / "users.acl"
    acl.write_text(f"user default on #{hashlib.sha256(secret['REDIS_PASSWORD'].encode()).hexdigest()} ~* &* +@all\n")
    acl.chmod(0o644)
    runs = {
        "postgres": ["-e", "POSTGRES_USER=nexanest", "-e", "POSTGRES_PASSWORD", images["postgres"]],
        "timescale": ["-e", "POSTGRES_USER=nexanest", "-e", "POSTGRES_PASSWORD", images["postgres"]],
        "redis": [images["redis"], "redis-server", "--aclfile", "/data/users.acl"],
    }
    env_for = {"postgres": secret["POSTGRES_PASSWORD"], "timescale": secret["TIMESCALE_PASSWORD"]}
    try:
        started = time.perf_counter()

        def run(instance: str) -> None:
            port = 6379 if instance == "redis" else 5432
            name = f"{prefix}-{instance}"
            subprocess.run(
                ["docker", "create", "--name", name, "-p", f"127.0.0.1:{ports[instance]}:{port}", *runs[instance]],
                check=True,
                capture_output=True,
                env={**os.environ, "POSTGRES_PASSWORD": env_for.get(instance, "")},
            )
            if instance == "redis":
                subprocess.run(["docker", "cp", str(acl), f"{name}:/data/users.acl"], check=True, capture_output=True)
            subprocess.run(["docker", "start", name], check=True, capture_output=True)

        threads = [threading.Thread(target=run, args=(instance,)) for instance in ports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pending = dict(ports)
        while pending:
            for instance, port in list(pending.items()):
                endpoint = HostPort(host="127.0.0.1", port=port)
                if redis_answers(endpoint, tls=False) if instance == "redis" else postgres_answers(endpoint):
                    del pending[instance]
            if pending:
                if time.perf_counter() - started > 180:
                    sys.exit(f"bench_deploy: floor containers did not answer: {sorted(pending)}")
                time.sleep(0.05)
        answered = time.perf_counter() - started
        env = {**tools.environ, **secret, "NNDB_BACKUP_DIR": str(workdir / "floor-backups")}
        for instance, port in ports.items():
            env[f"{instance.upper()}_HOST"] = "127.0.0.1"
            env[f"{instance.upper()}_PORT"] = str(port)
        started = time.perf_counter()
        hooks = subprocess.run(["nndb", "hooks", "run", "local-db"], cwd=project, env=env, capture_output=True, text=True)
        hooks_s = time.perf_counter() - started
        if hooks.returncode != 0:
            sys.exit(f"bench_deploy: nndb hooks run on the floor containers failed: {hooks.stderr.strip()}")
        return answered, hooks_s
    finally:
        for instance in ports:
            subprocess.run(["docker", "rm", "-f", "-v", f"{prefix}-{instance}"], capture_output=True)


# Where the first deploy's time goes: the moment each of these first appears in cdktf's output.
MILESTONES = (
    ("cdktf start + synth (4 stacks)", re.compile(r"Initializing the backend")),
    ("terraform init", re.compile(r"Terraform has been successfully initialized")),
    ("plan (secrets data source)", re.compile(r"Plan: \d+ to add")),
    ("network (provider waits 2 s)", re.compile(r"docker_network\.\S+: Creation complete")),
    ("containers created", re.compile(r"docker_container\.timescale\S*: Creation complete")),
    ("nndb wait-ready", re.compile(r'Executing: \["/bin/sh" "-c" "nndb hooks run')),
    ("nndb hooks run", re.compile(r"hooks: \d+ changes")),
    ("apply complete", re.compile(r"Apply complete!")),
)


def first_deploy_phases(deployed: DeployedCopy) -> list[tuple[str, float]]:
    """``cdktf deploy local-db`` from nothing, with the time between consecutive milestones."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(deployed.toolchain.cdktf), "deploy", deployed.stack, "--auto-approve"],
        cwd=deployed.root,
        env=deployed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, float] = {}
    assert process.stdout is not None
    for raw in process.stdout:
        line = ANSI.sub("", raw)
        for label, pattern in MILESTONES:
            if label not in seen and pattern.search(line):
                seen[label] = time.perf_counter() - start
    if process.wait() != 0:
        sys.exit("bench_deploy: the first cdktf deploy failed; run tests/e2e/test_deploy_local_db.py for its output")
    deployed.timings["first deploy"] = time.perf_counter() - start
    phases, previous = [], 0.0
    for label, _ in MILESTONES:
        if label in seen:
            phases.append((label, seen[label] - previous))
            previous = seen[label]
    return phases


def deploys(workdir: Path, tools: Toolchain) -> tuple[dict[str, float], list[tuple[str, float]]]:
    deployed = DeployedCopy.create(workdir / "project", tools, label="bench_deploy")
    try:
        phases = first_deploy_phases(deployed)
        deployed.cdktf("no-op redeploy", "deploy")
        deployed.edit_config("log_min_duration_statement = 1000", "log_min_duration_statement = 250")
        deployed.cdktf("config-change redeploy", "deploy")
        deployed.cdktf("destroy", "destroy")
        return dict(deployed.timings), phases
    finally:
        deployed.teardown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="repeat floor + deploys and report medians")
    args = parser.parse_args()
    tools = toolchain()
    docker("info", "--format", "{{.ServerVersion}}")
    floors: list[tuple[float, float]] = []
    runs: list[dict[str, float]] = []
    breakdown: list[tuple[str, float]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="nndb-bench-deploy-") as tmp:
            floors.append(floor(Path(tmp), tools))
            timings, breakdown = deploys(Path(tmp), tools)
            runs.append(timings)
    answered = statistics.median(f[0] for f in floors)
    hooks = statistics.median(f[1] for f in floors)
    floor_s = statistics.median(f[0] + f[1] for f in floors)
    phases = {phase: statistics.median(r[phase] for r in runs) for phase in runs[0]}
    source = os.environ.get("NNDB_PROVIDER_SOURCE", "?")
    print(f"bench_deploy: local-db, {args.rounds} round(s), stand-in images, providers from {source}")
    print(f"  floor: docker run x3 until they answer {answered:6.2f} s + nndb hooks run {hooks:5.2f} s = {floor_s:6.2f} s")
    ratio = phases["first deploy"] / floor_s
    verdict = "OK" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"  cdktf deploy local-db (from nothing)      {phases['first deploy']:6.2f} s   {ratio:4.2f}x floor   target <= {TARGET_RATIO:.1f}x  {verdict}"
    )
    for label, seconds in breakdown:  # the last round's
        print(f"      {label:<37} {seconds:6.2f} s")
    for phase in ("no-op redeploy", "config-change redeploy", "destroy"):
        label = {"destroy": "cdktf destroy local-db (verified backups)"}.get(
            phase, f"cdktf deploy local-db ({phase.removesuffix(' redeploy')})"
        )
        print(f"  {label:<41} {phases[phase]:6.2f} s   {phases[phase] / floor_s:4.2f}x floor")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
