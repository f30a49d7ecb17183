"""Streaming replication: where each node stands, and an operator-driven switchover or failover.

No leader election here (ADR-015 keeps plain official images; an HA engine such as Patroni would
have to run beside each server — see docs/topology.md): the operator chooses the standby, and this
module makes the move safe.

* **Switchover** (planned, no data loss): new transactions on the primary default to read-only and
  every client session is ended; the primary's WAL insert position at that moment is what the
  standby must replay; once it has (bounded wait), the old primary is fenced (stopped, and kept from
  restarting by whoever supplies ``Node.fence``), and only then is the standby promoted. If the
  standby does not catch up in time, the primary takes writes again and nothing else changed.
* **Failover** (the primary is gone): the old primary is fenced first; if it still answers after
  that, nothing is promoted — two writable primaries is the one outcome worse than downtime.

Both never promote a node that is not a standby, and check afterwards that the promoted node takes
writes. Each step is reported through ``on_step`` with its elapsed time; SQL is in sql/queries/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from nexanest_db.errors import FailoverError
from nexanest_db.queries import load_query

StepReporter = Callable[[str, float], None]


def _no_report(_line: str, _elapsed: float) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class Node:
    """One PostgreSQL server of an instance, as the operations see it.

    ``connect`` opens an autocommit superuser connection (raising ``psycopg.OperationalError`` when
    the server does not answer); ``fence`` stops the server so that it cannot take writes and will not
    come back by itself (``docker stop`` plus ``--restart=no`` for a container).
    """

    name: str
    connect: Callable[[], psycopg.Connection]
    fence: Callable[[], None]


@dataclass(frozen=True)
class NodeState:
    name: str
    reachable: bool
    in_recovery: bool | None = None
    lsn: str | None = None
    read_only_default: bool | None = None
    receiver_status: str | None = None

    @property
    def role(self) -> str:
        if not self.reachable:
            return "unreachable"
        return "standby" if self.in_recovery else "primary"


@dataclass(frozen=True)
class StandbyLag:
    application_name: str
    state: str
    replay_lag_bytes: int
    replay_lag_s: float


@dataclass
class MoveReport:
    """What a switchover or failover did: each step with its elapsed time, and the write outage."""

    kind: str
    old_primary: str
    new_primary: str
    steps: list[tuple[str, float]] = field(default_factory=list)
    write_unavailable_s: float | None = None


class _Run:
    def __init__(self, sql_dir: Path, report: MoveReport, on_step: StepReporter) -> None:
        self.sql_dir, self.report, self.on_step = sql_dir, report, on_step
        self.started = time.monotonic()

    def query(self, name: str) -> str:
        return load_query(self.sql_dir, name)

    def step(self, line: str) -> None:
        elapsed = time.monotonic() - self.started
        self.report.steps.append((line, elapsed))
        self.on_step(line, elapsed)


def node_state(node: Node, sql_dir: Path) -> NodeState:
    """The node's role and WAL position; ``reachable=False`` when it does not answer."""
    try:
        with node.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(load_query(sql_dir, "replication-node")).fetchone()
            assert row is not None
            receiver = None
            if row["in_recovery"]:
                receiver_row = cur.execute(load_query(sql_dir, "replication-receiver")).fetchone()
                receiver = str(receiver_row["receiver_status"]) if receiver_row else None
    except psycopg.OperationalError:
        return NodeState(node.name, reachable=False)
    return NodeState(
        node.name,
        reachable=True,
        in_recovery=bool(row["in_recovery"]),
        lsn=str(row["lsn"]),
        read_only_default=bool(row["read_only_default"]),
        receiver_status=receiver,
    )


def standby_lag(primary: Node, sql_dir: Path) -> list[StandbyLag]:
    """Each standby streaming from ``primary`` and how far behind it replays."""
    with primary.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_query(sql_dir, "replication-standbys")).fetchall()
    return [StandbyLag(str(r["application_name"]), str(r["state"]), int(r["replay_lag_bytes"]), float(r["replay_lag_s"])) for r in rows]


def _require_standby(standby: Node, sql_dir: Path, *, streaming: bool) -> None:
    state = node_state(standby, sql_dir)
    if not state.reachable:
        raise FailoverError(f"{standby.name}: does not answer; choose a standby that is up (`nndb status` lists them)")
    if not state.in_recovery:
        raise FailoverError(f"{standby.name}: is not a standby (it takes writes already); nothing to promote")
    if streaming and state.receiver_status != "streaming":
        raise FailoverError(
            f"{standby.name}: is not streaming from the primary (receiver {state.receiver_status}); "
            "a switchover needs a connected standby — fix replication first, or use a failover if the primary is gone"
        )


def _promote(run: _Run, standby: Node, *, wait_s: float) -> None:
    with standby.connect() as conn:
        row = conn.execute(run.query("replication-promote"), {"wait_seconds": max(1, int(wait_s))}).fetchone()
        if not row or not row[0]:
            raise FailoverError(
                f"{standby.name}: did not finish promotion within {wait_s:.0f} s; look at its log, then run the command again"
            )
    with standby.connect() as conn:
        # txid_current() needs a writable server: a standby refuses to assign a transaction id.
        conn.execute(run.query("replication-txid"))
        conn.execute(run.query("replication-writes-on"))
        conn.execute(run.query("replication-reload"))
    run.step(f"{standby.name}: promoted, takes writes")


def switchover(
    primary: Node,
    standby: Node,
    *,
    sql_dir: Path,
    catch_up_timeout_s: float = 30.0,
    promote_timeout_s: float = 30.0,
    on_step: StepReporter = _no_report,
) -> MoveReport:
    """Planned move of the primary role to ``standby`` with no committed transaction lost."""
    report = MoveReport("switchover", primary.name, standby.name)
    run = _Run(sql_dir, report, on_step)
    primary_state = node_state(primary, sql_dir)
    if not primary_state.reachable:
        raise FailoverError(f"{primary.name}: the primary does not answer, so a switchover cannot wait for the standby; use a failover")
    if primary_state.in_recovery:
        raise FailoverError(f"{primary.name}: is a standby, not the primary; check which node is primary with `nndb status`")
    _require_standby(standby, sql_dir, streaming=True)
    run.step(f"checked: {primary.name} is the primary, {standby.name} a streaming standby")

    writes_stopped_at = time.monotonic()
    with primary.connect() as conn:
        conn.execute(run.query("replication-writes-off"))
        conn.execute(run.query("replication-reload"))
        ended = conn.execute(run.query("replication-end-sessions")).fetchone()
        target = conn.execute(run.query("replication-insert-lsn")).fetchone()
    assert target is not None
    run.step(f"{primary.name}: writes stopped ({ended[0] if ended else 0} sessions ended) at WAL {target[0]}")

    deadline = time.monotonic() + catch_up_timeout_s
    while True:
        with standby.connect() as conn:
            caught = conn.execute(run.query("replication-replayed-past"), {"lsn": target[0]}).fetchone()
        if caught and caught[0]:
            break
        if time.monotonic() >= deadline:
            with primary.connect() as conn:
                conn.execute(run.query("replication-writes-on"))
                conn.execute(run.query("replication-reload"))
            raise FailoverError(
                f"{standby.name}: had not replayed up to {target[0]} after {catch_up_timeout_s:.0f} s; switchover abandoned, "
                f"{primary.name} takes writes again — look at the replication lag (`nndb status`) and retry"
            )
        time.sleep(0.05)
    run.step(f"{standby.name}: caught up to {target[0]}")

    primary.fence()
    if node_state(primary, sql_dir).reachable:
        raise FailoverError(
            f"{primary.name}: still answers after fencing; not promoting {standby.name} (never two primaries) — stop it by hand"
        )
    run.step(f"{primary.name}: fenced (stopped)")
    _promote(run, standby, wait_s=promote_timeout_s)
    report.write_unavailable_s = time.monotonic() - writes_stopped_at
    return report


def failover(
    primary: Node,
    standby: Node,
    *,
    sql_dir: Path,
    promote_timeout_s: float = 30.0,
    on_step: StepReporter = _no_report,
) -> MoveReport:
    """Unplanned move: the primary is lost; fence it, then promote ``standby`` (WAL not yet received is lost)."""
    report = MoveReport("failover", primary.name, standby.name)
    run = _Run(sql_dir, report, on_step)
    _require_standby(standby, sql_dir, streaming=False)
    primary.fence()
    if node_state(primary, sql_dir).reachable:
        raise FailoverError(
            f"{primary.name}: still answers after fencing; not promoting {standby.name} (never two primaries) — "
            "if it is healthy, use a switchover instead"
        )
    run.step(f"{primary.name}: fenced (does not answer)")
    _promote(run, standby, wait_s=promote_timeout_s)
    return report


def writable_primaries(nodes: list[Node], sql_dir: Path) -> list[str]:
    """Names of the nodes that answer as primaries: more than one means split brain."""
    return [node.name for node in nodes if node_state(node, sql_dir).role == "primary"]
