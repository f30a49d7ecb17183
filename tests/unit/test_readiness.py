"""`nndb wait-ready`'s loop: it returns once everything answers, and otherwise says exactly why not, in one line."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nexanest_db.config import HostPort
from nexanest_db.engine import ContainerState, Engine
from nexanest_db.errors import ConnectionFailed
from nexanest_db.readiness import Target, wait_ready

TARGETS = [
    Target(instance="postgres", container="t-postgres", endpoint=HostPort(host="127.0.0.1", port=15432), kind="postgres"),
    Target(instance="redis", container="t-redis", endpoint=HostPort(host="127.0.0.1", port=16379), kind="redis"),
]


@dataclass
class FakeEngine:
    """An engine whose answers the test sets: container states and log lines."""

    description: str = "unix:///var/run/docker.sock"
    states: dict[str, ContainerState | None] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def state(self, name: str) -> ContainerState | None:
        self.asked.append(name)
        return self.states.get(name)

    def log_tail(self, name: str, lines: int = 5) -> list[str]:
        return self.logs.get(name, [])[-lines:]


def fake_engine(**kwargs) -> FakeEngine:  # type: ignore[no-untyped-def]
    return FakeEngine(**kwargs)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_returns_once_every_target_answers() -> None:
    clock = Clock()
    answers_after = {"postgres": 1.0, "redis": 2.5}
    readiness = wait_ready(
        TARGETS,
        timeout_s=60,
        engine=fake_engine(states={"t-postgres": ContainerState(status="running"), "t-redis": ContainerState(status="running")}),
        probe=lambda t: clock.now >= answers_after[t.instance],
        clock=clock,
        sleep=clock.sleep,
    )
    assert readiness.seconds["postgres"] == pytest.approx(1.0, abs=0.3)
    assert readiness.seconds["redis"] == pytest.approx(2.6, abs=0.3)
    assert clock.now < 3.5


def test_timeout_names_container_state_and_last_log_lines() -> None:
    clock = Clock()
    engine = fake_engine(
        states={"t-postgres": ContainerState(status="running", health="starting")},
        logs={"t-postgres": ["LOG:  starting PostgreSQL 15", "LOG:  waiting for WAL", "LOG:  still recovering", "LOG:  redo in progress"]},
    )
    with pytest.raises(ConnectionFailed) as failure:
        wait_ready(TARGETS[:1], timeout_s=10, engine=engine, probe=lambda t: False, clock=clock, sleep=clock.sleep)
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("postgres: container t-postgres did not answer on 127.0.0.1:15432 after 10 s;")
    assert "it is running (health starting)" in message
    assert (
        "last log lines: LOG:  starting PostgreSQL 15 | LOG:  waiting for WAL | LOG:  still recovering | LOG:  redo in progress" in message
    )


def test_a_crash_looping_container_fails_at_once_with_its_log() -> None:
    clock = Clock()
    engine = fake_engine(
        states={
            "t-postgres": ContainerState(status="running"),
            "t-redis": ContainerState(status="restarting", exit_code=1, restart_count=3),
        },
        logs={"t-redis": ["*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***", ">>> 'maxmemory 128zz'", "Bad memory amount"]},
    )
    with pytest.raises(ConnectionFailed) as failure:
        wait_ready(TARGETS, timeout_s=180, engine=engine, probe=lambda t: t.instance == "postgres", clock=clock, sleep=clock.sleep)
    assert clock.now < 10, "a crash loop must not wait for the whole timeout"
    message = str(failure.value)
    assert message.startswith("redis: container t-redis did not answer on 127.0.0.1:16379 after 3 s;")
    assert "it is restarting (exit code 1, 3 restarts)" in message
    assert "Bad memory amount" in message


def test_an_exited_or_missing_container_fails_early_too() -> None:
    for state, described in (
        (ContainerState(status="exited", exit_code=137), "it is exited (exit code 137)"),
        (ContainerState(status="missing"), "it is missing (no such container on the engine)"),
    ):
        clock = Clock()
        with pytest.raises(ConnectionFailed, match=described.replace("(", r"\(").replace(")", r"\)")):
            wait_ready(
                TARGETS[:1],
                timeout_s=180,
                engine=fake_engine(states={"t-postgres": state}),
                probe=lambda t: False,
                clock=clock,
                sleep=clock.sleep,
            )
        assert clock.now < 10


def test_an_engine_that_cannot_be_asked_is_said_so() -> None:
    clock = Clock()
    with pytest.raises(ConnectionFailed, match=r"state unknown \(could not ask the engine at unix:///var/run/docker.sock\)"):
        wait_ready(TARGETS[:1], timeout_s=5, engine=fake_engine(), probe=lambda t: False, clock=clock, sleep=clock.sleep)


def test_ssh_engine_runs_docker_through_the_stacks_ssh_options() -> None:
    from nexanest_db.config import load_environment
    from tests.support.project import REPO_ROOT

    engine = Engine.for_config(load_environment("dev-db", config_dir=REPO_ROOT / "config"))
    command = engine._command("logs", "--tail", "20", "nexanest-dev timescale")
    # The provider's own options first (as its connection helper passes them), one quoted remote command last.
    assert command == [
        "ssh", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "BatchMode=yes",
        "-l", "deploy", "pgdb.nn.local", "--", "docker logs --tail 20 'nexanest-dev timescale'",
    ]  # fmt: skip
    local = Engine.for_config(load_environment("local-db", config_dir=REPO_ROOT / "config"))
    assert local._command("logs", "x") == ["docker", "-H", "unix:///var/run/docker.sock", "logs", "x"]
