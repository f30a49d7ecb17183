"""The Terraform-to-docker realizer of tests/e2e/test_container_specs.py: synthesize local-db in a project copy, run its
``data "external"`` secret programs the way Terraform does, evaluate the ``docker_network``, ``docker_volume`` and
``docker_container`` blocks (only the expressions the stacks generate today: anything else fails), and create the
containers with the docker CLI, field by field. Not a deploy: the kreuzwerker/docker provider is what deploys.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
import redis

from nexanest_db.secrets import SECRET_SPECS
from tests.fixtures.pki import Pki
from tests.support.e2e_run import record_phases, teardown
from tests.support.local_servers import free_port
from tests.support.metrics import SampleNeverSeen, wait_for_sample
from tests.support.project import copy_project
from tests.support.standins import local_copy_text

STACK = "local-db"
INSTANCES = ("postgres", "timescale", "redis")
EXPORTERS = tuple(f"{instance}-exporter" for instance in INSTANCES)  # container names after the prefix

# One distinct password per credential the stack has (nexanest_db.secrets.SECRET_SPECS).
PASSWORDS = {spec.env_var: f"cs-{spec.name}-pw" for spec in SECRET_SPECS}

# docker_container arguments this test turns into `docker create` options (see create_args).
MAPPED_CONTAINER_FIELDS = frozenset(
    {
        "name",
        "image",
        "command",
        "entrypoint",
        "env",
        "healthcheck",
        "ports",
        "memory",
        "memory_swap",
        "cpu_period",
        "cpu_quota",
        "restart",
        "labels",
        "log_driver",
        "log_opts",
        "mounts",
        "networks_advanced",
        "stop_timeout",
        "upload",
    }
)
IGNORED_CONTAINER_FIELDS = frozenset(
    {
        "//",  # cdktf metadata, not a provider argument
        "wait",  # false: a deploy waits with `nndb wait-ready`; this test waits for "healthy" itself (wait_containers_healthy)
        "must_run",  # the provider checks the container keeps running: wait_containers_healthy fails on an exited one
        "destroy_grace_seconds",  # only used by `terraform destroy`; teardown here is `docker rm -f`
    }
)
NETWORK_FIELDS = frozenset({"//", "name", "driver", "internal", "labels"})
VOLUME_FIELDS = frozenset({"//", "name", "labels"})

# The only Terraform expressions the stacks generate. Anything else containing ${ or %{ fails.
_ID = r"[A-Za-z0-9_-]+"
_SECRET_REF = rf'data\.external\.(?P<source>{_ID})\.result\["(?P<name>[a-z0-9_]+)"\]'
SENSITIVE = re.compile(rf"\$\{{sensitive\({_SECRET_REF}\)\}}")
# The Redis ACL file: join("", [format("user %s on #%s %s\n", "<user>", sensitive(sha256(<secret>)), "<rules>"), ...])
_ACL_LINE = rf'format\("user %s on #%s %s\\n", "(?P<user>[A-Za-z0-9_-]+)", sensitive\(sha256\({_SECRET_REF}\)\), "(?P<rules>[^"\\$%]*)"\)'
ACL_LINE = re.compile(_ACL_LINE)
ACL_FILE = re.compile(
    r'\$\{join\("", \[' + re.sub(r"\(\?P<\w+>", "(?:", _ACL_LINE) + r"(?:, " + re.sub(r"\(\?P<\w+>", "(?:", _ACL_LINE) + r")*\]\)\}"
)
# The redis_exporter password map: format("{%s:%s}", jsonencode("<uri>"), jsonencode(sensitive(<secret>)))
PASSWORD_MAP = re.compile(
    rf'\$\{{format\("\{{%s:%s\}}", jsonencode\("(?P<uri>[a-z]+://[a-z0-9.-]+:[0-9]+)"\), jsonencode\(sensitive\({_SECRET_REF}\)\)\)\}}'
)
RESOURCE_REF = re.compile(rf"\$\{{(?P<type>docker_image|docker_volume|docker_network)\.(?P<id>{_ID})\.(?P<attr>image_id|name)\}}")
REF_ATTRIBUTE = {"docker_image": "image_id", "docker_volume": "name", "docker_network": "name"}
LOCAL_REF = re.compile(rf"\$\{{local\.(?P<name>{_ID})\}}")  # a file shared by two uploads (nexanest_db.constructs.shared.shared_text)
# A Redis replica's masterauth file: format("masterauth %s\n", sensitive(<secret>))
FORMAT_SECRET = re.compile(rf'\$\{{format\("(?P<format>[^"%$]*%s[^"%$]*)", sensitive\({_SECRET_REF}\)\)\}}')
# A template sequence Terraform would evaluate: ${ or %{ not escaped as $${ / %%{ (a literal, e.g. a shell script's ${VAR}).
UNESCAPED = re.compile(r"(?<![$])[$][{]|(?<![%])[%][{]")


def unescape(literal: str) -> str:
    """A Terraform string literal's text: ``$${`` is ``${``, ``%%{`` is ``%{``."""
    return literal.replace("$${", "${").replace("%%{", "%{")


def fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def docker(*args: str, stdin: bytes | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        fail(f"docker {' '.join(args[:2])} ... exited {result.returncode}: {result.stderr.decode(errors='replace').strip()}")
    return result


def container_log(name: str, lines: int = 40) -> str:
    logs = docker("logs", "--tail", str(lines), name, check=False)
    return (logs.stdout + logs.stderr).decode(errors="replace").strip()


@dataclass
class Terraform:
    """The parts of cdk.tf.json this test evaluates, and the secret values of its data.external source."""

    document: dict[str, Any]
    secrets: dict[str, dict[str, str]]  # data.external id -> result

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.document["resource"].get(kind, {})

    def evaluate(self, value: Any, where: str) -> Any:
        """``value`` with every string evaluated as Terraform would: literals as-is, our expressions resolved."""
        if isinstance(value, dict):
            return {k: self.evaluate(v, f"{where}.{k}") for k, v in value.items() if k != "//"}
        if isinstance(value, list):
            return [self.evaluate(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if match := SENSITIVE.fullmatch(value):
            return self.secret(match, where)
        if match := FORMAT_SECRET.fullmatch(value):
            return match["format"].replace("\\n", "\n") % self.secret(match, where)
        if match := PASSWORD_MAP.fullmatch(value):
            return json.dumps({match["uri"]: self.secret(match, where)})
        if ACL_FILE.fullmatch(value):
            return "".join(
                f"user {line['user']} on #{hashlib.sha256(self.secret(line, where).encode('utf-8')).hexdigest()} {line['rules']}\n"
                for line in ACL_LINE.finditer(value)
            )
        if match := LOCAL_REF.fullmatch(value):
            text = self.document.get("locals", {}).get(match["name"])
            if not isinstance(text, str) or UNESCAPED.search(text):
                fail(f"{where}: {value} is not a plain-text local of cdk.tf.json")
            return unescape(text)
        if match := RESOURCE_REF.fullmatch(value):
            if REF_ATTRIBUTE[match["type"]] != match["attr"]:
                fail(f"{where}: unsupported reference {value} (this test maps {match['type']}.*.{REF_ATTRIBUTE[match['type']]})")
            target = self.resources(match["type"]).get(match["id"])
            if target is None:
                fail(f"{where}: {value} refers to a resource that is not in cdk.tf.json")
            return target["name"]
        if UNESCAPED.search(value):
            fail(f"{where}: Terraform expression this test cannot evaluate (extend it deliberately): {value[:200]!r}")
        return unescape(value)

    def secret(self, match: re.Match[str], where: str) -> str:
        result = self.secrets.get(match["source"])
        if result is None or match["name"] not in result:
            fail(f"{where}: data.external.{match['source']} gives no {match['name']!r}")
        return result[match["name"]]


def upload_tar(uploads: list[dict[str, Any]], where: str) -> bytes:
    """One tar of the upload blocks: each file at its path, mode from ``permissions``, owned by root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i, upload in enumerate(uploads):
            unknown = set(upload) - {"file", "content", "permissions"}
            if unknown:
                fail(f"{where}.upload[{i}]: fields this test does not map: {sorted(unknown)}")
            data = upload["content"].encode("utf-8")
            info = tarfile.TarInfo(upload["file"].lstrip("/"))
            info.size = len(data)
            info.mode = int(upload.get("permissions", "0644"), 8)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_args(block: dict[str, Any], where: str, *, also_ignored: frozenset[str] = frozenset()) -> list[str]:
    """`docker create` arguments for one evaluated docker_container block; unmapped fields fail.

    ``also_ignored``: fields the caller realizes itself (a replica's ``provider`` alias and ``depends_on``).
    """
    unknown = set(block) - MAPPED_CONTAINER_FIELDS - IGNORED_CONTAINER_FIELDS - also_ignored
    if unknown:
        fail(f"{where}: docker_container fields this test does not map (extend create_args): {sorted(unknown)}")
    args = ["create", "--name", block["name"]]
    for entry in block.get("env", []):
        args += ["--env", entry]
    if hc := block.get("healthcheck"):
        extra = set(hc) - {"test", "interval", "timeout", "retries", "start_period"}
        if extra:
            fail(f"{where}.healthcheck: fields this test does not map: {sorted(extra)}")
        test = hc["test"]
        if len(test) != 2 or test[0] != "CMD-SHELL":
            fail(f"{where}.healthcheck.test: only [CMD-SHELL, <command>] maps to --health-cmd, got {test}")
        args += ["--health-cmd", test[1]]
        for key, option in (("interval", "interval"), ("timeout", "timeout"), ("retries", "retries"), ("start_period", "start-period")):
            if key in hc:
                args += [f"--health-{option}", str(hc[key])]
    for port in block.get("ports", []):
        if set(port) - {"internal", "external", "ip", "protocol"}:
            fail(f"{where}.ports: fields this test does not map: {sorted(port)}")
        args += ["--publish", f"{port.get('ip', '0.0.0.0')}:{port['external']}:{port['internal']}/{port.get('protocol', 'tcp')}"]
    if "memory" in block:
        args += ["--memory", f"{block['memory']}m"]  # the provider's memory is in MB
    if "memory_swap" in block:
        args += ["--memory-swap", f"{block['memory_swap']}m"]
    if "cpu_period" in block:
        args += ["--cpu-period", str(block["cpu_period"])]
    if "cpu_quota" in block:
        args += ["--cpu-quota", str(block["cpu_quota"])]
    if "restart" in block:
        args += ["--restart", block["restart"]]
    for label in block.get("labels", []):
        args += ["--label", f"{label['label']}={label['value']}"]
    if "log_driver" in block:
        args += ["--log-driver", block["log_driver"]]
    for key, value in block.get("log_opts", {}).items():
        args += ["--log-opt", f"{key}={value}"]
    for mount in block.get("mounts", []):
        if set(mount) != {"type", "source", "target"} or mount["type"] != "volume":
            fail(f"{where}.mounts: only type=volume with source/target is mapped, got {mount}")
        args += ["--mount", f"type=volume,source={mount['source']},target={mount['target']}"]
    networks = block.get("networks_advanced", [])
    if len(networks) > 1:
        fail(f"{where}.networks_advanced: `docker create` attaches one network with aliases; got {len(networks)}")
    for network in networks:
        if set(network) - {"name", "aliases"}:
            fail(f"{where}.networks_advanced: fields this test does not map: {sorted(network)}")
        args += ["--network", network["name"]]
        for alias in network.get("aliases", []):
            args += ["--network-alias", alias]
    if "stop_timeout" in block:
        args += ["--stop-timeout", str(block["stop_timeout"])]
    # `docker create --entrypoint` takes one executable: the rest of the entrypoint array goes before
    # the command, which gives the container the same argv as the provider's entrypoint + command.
    entrypoint = block.get("entrypoint", [])
    if entrypoint:
        args += ["--entrypoint", entrypoint[0]]
    return [*args, block["image"], *entrypoint[1:], *block.get("command", [])]


@dataclass
class Realized:
    root: Path
    prefix: str
    ports: dict[str, int]
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance -> evaluated block
    config: dict[str, Any] = field(default_factory=dict)

    def name(self, instance: str) -> str:
        return f"{self.prefix}-{instance}"

    def superuser(self, instance: str) -> str:
        env = dict(entry.split("=", 1) for entry in self.containers[instance].get("env", []))
        return env["POSTGRES_USER"]

    def connect(self, instance: str, user: str, password: str, dbname: str, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.ports[instance],
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=10,
            autocommit=True,
            **kwargs,
        )

    def redis(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports["redis"], socket_timeout=10, decode_responses=True, **kwargs)

    def nndb(self, phase: str | None, *args: str) -> str:
        start = time.perf_counter()
        result = subprocess.run(["nndb", *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if phase:
            self.timings[phase] = time.perf_counter() - start
        output = result.stdout + result.stderr
        if result.returncode != 0:
            fail(f"nndb {' '.join(args)} exited {result.returncode}:\n{output[-3000:]}")
        return output


def scrape_until(state: Realized, exporter: str, sample: str, timeout_s: float = 45) -> str:
    """GET /metrics of ``exporter`` (published port) until a line equals ``sample`` (e.g. ``pg_up 1``); fail with what it said."""
    try:
        return wait_for_sample(state.ports[exporter], sample, timeout_s=timeout_s)
    except SampleNeverSeen as exc:
        fail(f"{exporter}: /metrics never had {sample!r} within {timeout_s:.0f} s ({exc.last})\n{container_log(state.name(exporter))}")


def base_environment() -> dict[str, str]:
    env = dict(os.environ)
    for spec in SECRET_SPECS:  # an outer *_FILE or .env.db-style override must not win over ours
        env.pop(f"{spec.env_var}_FILE", None)
    for key in ("NNDB_PROJECT_DIR", "DB_HOST"):
        env.pop(key, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def wait_containers_healthy(deadlines: dict[str, float], *, bound: str = "") -> None:
    """Poll until every container (name -> its ``time.monotonic()`` deadline) is healthy by its own synthesized
    health check; fail at once on one that exited or turned unhealthy, and on one past its deadline (``bound`` says which)."""
    pending = set(deadlines)
    while pending:
        for name in sorted(pending):
            state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                pending.discard(name)
                continue
            probes = [entry.get("Output", "").strip() for entry in (state.get("Health") or {}).get("Log", [])[-2:]]
            if state.get("Status") != "running" or health == "unhealthy":
                fail(f"{name} is {state.get('Status')}/{health} (exit {state.get('ExitCode')}); probes: {probes}\n{container_log(name)}")
            if time.monotonic() > deadlines[name]:
                fail(f"{name} not healthy within {bound or 'its wait'} (status {health}); probes: {probes}\n{container_log(name)}")
        if pending:
            time.sleep(1)


def port_environment(ports: dict[str, int], instances: tuple[str, ...], *, host: str | None = None) -> dict[str, str]:
    """``<INSTANCE>_PORT`` and ``<INSTANCE>_EXPORTER_PORT`` (and ``<INSTANCE>_HOST`` when given) for this run's free ports."""
    env: dict[str, str] = {}
    for instance in instances:
        if host is not None:
            env[f"{instance.upper()}_HOST"] = host
        env[f"{instance.upper()}_PORT"] = str(ports[instance])
        env[f"{instance.upper()}_EXPORTER_PORT"] = str(ports[f"{instance}-exporter"])
    return env


def realize_copy(
    tmp_path_factory: pytest.TempPathFactory, directory: str, prefix_base: str, *, tls: Pki | None = None
) -> Iterator[Realized]:
    """Synthesize local-db in a renamed project copy (``tls``: with ``[tls] enabled = true``), realize it, tear it down."""
    root = copy_project(tmp_path_factory.mktemp(directory) / "project")
    prefix = f"{prefix_base}-{uuid.uuid4().hex[:8]}"
    config_file = root / "config" / "local.toml"
    # The stand-in images (tests/images/tags.txt), never the shipped config's official names.
    text = local_copy_text(config_file.read_text(), prefix)
    if tls is not None:
        text += "\n[tls]\nenabled = true\n"
    config_file.write_text(text)
    ports = {name: free_port() for name in (*INSTANCES, *EXPORTERS)}
    env = {**base_environment(), **PASSWORDS, **(tls.environ if tls is not None else {})}
    env |= port_environment(ports, INSTANCES, host="127.0.0.1")
    state = Realized(root=root, prefix=prefix, ports=ports, env=env, config=tomllib.loads(text))
    try:
        realize(state)
        yield state
    finally:
        teardown(prefix)
        label = "local-db container specs with TLS" if tls is not None else "local-db container specs"
        record_phases(f"{label} (docker CLI, not a deploy)", state.timings)


def realize(state: Realized) -> None:
    # 1. synth, as `python main.py` in the copy
    start = time.perf_counter()
    synth = subprocess.run([sys.executable, "main.py"], cwd=state.root, env=state.env, capture_output=True, text=True, timeout=300)
    state.timings["synth"] = time.perf_counter() - start
    if synth.returncode != 0:
        fail(f"python main.py exited {synth.returncode}:\n{(synth.stdout + synth.stderr)[-3000:]}")
    stack_dir = state.root / "cdktf.out" / "stacks" / STACK
    document = json.loads((stack_dir / "cdk.tf.json").read_text())

    # 2. secrets: the data.external program with its query on stdin, from the stack dir (as Terraform runs it)
    secrets: dict[str, dict[str, str]] = {}
    for source_id, source in document.get("data", {}).get("external", {}).items():
        result = subprocess.run(
            source["program"],
            input=json.dumps(source.get("query", {})),
            cwd=stack_dir,
            env=state.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            fail(f"data.external.{source_id} program {source['program']} exited {result.returncode}: {result.stderr.strip()}")
        values = json.loads(result.stdout)
        assert all(isinstance(v, str) for v in values.values()), "data.external results must be a map of strings"
        secrets[source_id] = values
    terraform = Terraform(document=document, secrets=secrets)

    # 3. evaluate every block; names must carry this run's prefix so nothing else on the engine is touched
    networks = {i: terraform.evaluate(b, f"docker_network.{i}") for i, b in terraform.resources("docker_network").items()}
    volumes = {i: terraform.evaluate(b, f"docker_volume.{i}") for i, b in terraform.resources("docker_volume").items()}
    for kind, blocks, allowed in (
        ("docker_network", terraform.resources("docker_network"), NETWORK_FIELDS),
        ("docker_volume", terraform.resources("docker_volume"), VOLUME_FIELDS),
    ):
        for block_id, block in blocks.items():
            if set(block) - allowed:
                fail(f"{kind}.{block_id}: fields this test does not map: {sorted(set(block) - allowed)}")
    containers: dict[str, dict[str, Any]] = {}
    for block_id, block in terraform.resources("docker_container").items():
        evaluated = terraform.evaluate(block, f"docker_container.{block_id}")
        instance = evaluated["name"].removeprefix(f"{state.prefix}-")
        assert instance in (*INSTANCES, *EXPORTERS), f"docker_container.{block_id} is named {evaluated['name']!r}, not <prefix>-<instance>"
        containers[instance] = evaluated
    assert sorted(containers) == sorted((*INSTANCES, *EXPORTERS))
    for name in [*(n["name"] for n in networks.values()), *(v["name"] for v in volumes.values())]:
        assert name.startswith(state.prefix), f"{name} does not carry the unique prefix {state.prefix}"
    for instance, block in containers.items():
        assert [p["external"] for p in block["ports"]] == [state.ports[instance]], (
            f"{instance}: the *_PORT override did not reach the stack"
        )
    state.containers = containers

    # 4. realize with the docker CLI: network, volumes, containers, uploads; start all, then wait
    start = time.perf_counter()
    for block in networks.values():
        args = ["network", "create", "--driver", block.get("driver", "bridge")]
        if block.get("internal"):
            args.append("--internal")
        for label in block.get("labels", []):
            args += ["--label", f"{label['label']}={label['value']}"]
        docker(*args, block["name"])
    for block in volumes.values():
        args = ["volume", "create"]
        for label in block.get("labels", []):
            args += ["--label", f"{label['label']}={label['value']}"]
        docker(*args, block["name"])
    for instance in (*INSTANCES, *EXPORTERS):
        block = containers[instance]
        where = f"docker_container ({instance})"
        docker(*create_args(block, where))
        if block.get("upload"):
            docker("cp", "-", f"{block['name']}:/", stdin=upload_tar(block["upload"], where))
    started: dict[str, float] = {}
    for instance in (*INSTANCES, *EXPORTERS):
        docker("start", containers[instance]["name"])
        started[instance] = time.monotonic()
    state.timings["create+start"] = time.perf_counter() - start

    start = time.perf_counter()
    timeout_s = int(state.config["healthcheck"]["deploy_wait_timeout_s"])
    wait_containers_healthy({state.name(i): started[i] + timeout_s for i in INSTANCES}, bound=f"deploy_wait_timeout_s {timeout_s} s")
    state.timings["healthy"] = time.perf_counter() - start


def bridge_gateway() -> str:
    """The default bridge's gateway: an address of this host that containers reach too (replicas reach their primary there)."""
    out = docker("network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}").stdout.decode().strip()
    if not out:
        fail("docker network inspect bridge: no gateway address; the replica test publishes on it")
    return out


def configure_replica_copy(
    root: Path, prefix: str, gateway: str, ports: dict[str, int], *, instances: tuple[str, ...], replica: str
) -> None:
    """local.toml of a project copy: this run's names, published on ``gateway``, one replica per instance on this engine."""
    config_file = root / "config" / "local.toml"
    text = local_copy_text(
        config_file.read_text(),
        prefix,
        replacements=(
            ('bind_address = "127.0.0.1"', f'bind_address = "{gateway}"'),
            ('endpoint_host = "127.0.0.1"', f'endpoint_host = "{gateway}"'),
        ),
    )
    # The "other host" is this engine under its own alias (the replicas reach the primaries at the gateway too).
    for instance in instances:
        text += (
            f"\n[replication.{instance}.replicas.{replica}]\n"
            'docker = { host = "unix:///var/run/docker.sock" }\n'
            f'endpoint_host = "{gateway}"\nbind_address = "{gateway}"\nport = {ports[f"{instance}-{replica}"]}\n'
        )
    config_file.write_text(text)


def data_source_values(document: dict[str, Any], stack_dir: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each data.external source's program run as Terraform runs it: its query on stdin, from the stack directory."""
    values: dict[str, dict[str, str]] = {}
    for source_id, source in document.get("data", {}).get("external", {}).items():
        result = subprocess.run(
            source["program"],
            input=json.dumps(source.get("query", {})),
            cwd=stack_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            fail(f"data.external.{source_id} program exited {result.returncode}: {result.stderr.strip()}")
        values[source_id] = json.loads(result.stdout)
    return values
