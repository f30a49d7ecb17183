"""Switchover and failover on a real PostgreSQL 15 primary with a streaming standby (Debian's packages)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from nexanest_db.errors import FailoverError
from nexanest_db.operations.replication import failover, node_state, standby_lag, switchover, writable_primaries
from tests.fixtures.replication import ReplicationPair
from tests.support.project import REPO_ROOT

SQL_DIR = REPO_ROOT / "sql"


def _create_table(pair: ReplicationPair) -> None:
    with pair.primary.connect() as conn:
        conn.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL)")


def _count(server_connect) -> int:  # type: ignore[no-untyped-def]
    with server_connect() as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def _wait_replayed(pair: ReplicationPair, rows: int, timeout_s: float = 10.0) -> None:
    # Wait on the WAL position, not on the rows: until the standby has replayed the CREATE TABLE,
    # a count there fails with "relation does not exist" rather than returning 0.
    with pair.primary.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    target_lsn = row[0]
    deadline = time.monotonic() + timeout_s
    while True:
        with pair.standby.connect() as conn:
            replayed = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target_lsn,)).fetchone()
        if replayed is not None and replayed[0]:
            break
        assert time.monotonic() < deadline, "the standby never replayed the primary's writes"
        time.sleep(0.05)
    assert _count(pair.standby.connect) == rows


def test_writes_on_the_primary_reach_the_standby_which_refuses_writes(primary_standby: ReplicationPair) -> None:
    pair = primary_standby
    _create_table(pair)
    with pair.primary.connect() as conn:
        conn.execute("INSERT INTO orders (note) SELECT 'row ' || g FROM generate_series(1, 100) g")
    _wait_replayed(pair, 100)
    assert node_state(pair.node(pair.primary), SQL_DIR).role == "primary"
    standby_state = node_state(pair.node(pair.standby), SQL_DIR)
    assert (standby_state.role, standby_state.receiver_status) == ("standby", "streaming")
    with pair.standby.connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO orders (note) VALUES ('on the standby')")
    lag = standby_lag(pair.node(pair.primary), SQL_DIR)
    assert [entry.state for entry in lag] == ["streaming"]
    assert lag[0].replay_lag_bytes >= 0


def test_switchover_under_a_steady_write_load_loses_no_committed_row(primary_standby: ReplicationPair) -> None:
    pair = primary_standby
    _create_table(pair)
    committed: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        # One connection per insert, as a pooled application would reconnect: every insert that
        # returned an id was committed on the primary and must survive the switchover.
        while not stop.is_set():
            try:
                with pair.node(pair.primary).connect() as conn:
                    row = conn.execute("INSERT INTO orders (note) VALUES ('load') RETURNING id").fetchone()
                    assert row is not None
                    committed.append(int(row[0]))
            except psycopg.Error:
                time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    while len(committed) < 200:
        time.sleep(0.01)
    lines: list[str] = []
    report = switchover(
        pair.node(pair.primary), pair.node(pair.standby), sql_dir=SQL_DIR, on_step=lambda line, _elapsed: lines.append(line)
    )
    stop.set()
    thread.join(timeout=10)

    assert report.kind == "switchover" and report.write_unavailable_s is not None and report.write_unavailable_s > 0
    assert any("caught up" in line for line in lines) and lines[-1].endswith("promoted, takes writes")
    with pair.standby.connect() as conn:
        ids = {int(r[0]) for r in conn.execute("SELECT id FROM orders").fetchall()}
        conn.execute("INSERT INTO orders (note) VALUES ('after the switchover')")  # the new primary takes writes
    assert set(committed) <= ids, f"{len(set(committed) - ids)} committed rows lost"
    assert node_state(pair.node(pair.primary), SQL_DIR).role == "unreachable"
    assert writable_primaries([pair.node(pair.primary), pair.node(pair.standby)], SQL_DIR) == [pair.node(pair.standby).name]


def test_failover_after_the_primary_is_killed_promotes_the_standby(primary_standby: ReplicationPair) -> None:
    pair = primary_standby
    _create_table(pair)
    with pair.primary.connect() as conn:
        conn.execute("INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 50)")
    _wait_replayed(pair, 50)
    pair.node(pair.primary).fence()  # the primary is gone (immediate stop, as a crash)

    with pytest.raises(FailoverError, match="primary does not answer"):
        switchover(pair.node(pair.primary), pair.node(pair.standby), sql_dir=SQL_DIR)
    report = failover(pair.node(pair.primary), pair.node(pair.standby), sql_dir=SQL_DIR)
    assert report.kind == "failover"
    assert _count(pair.standby.connect) == 50
    with pair.standby.connect() as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('after the failover')")
    with pytest.raises(FailoverError, match="is not a standby"):
        failover(pair.node(pair.primary), pair.node(pair.standby), sql_dir=SQL_DIR)


def test_failover_refuses_while_the_old_primary_still_answers(primary_standby: ReplicationPair) -> None:
    pair = primary_standby
    primary = pair.node(pair.primary)
    # A fence that does not work (the host is unreachable, the container restarts): never two primaries.
    stubborn = type(primary)(name=primary.name, connect=primary.connect, fence=lambda: None)
    with pytest.raises(FailoverError, match="still answers after fencing; not promoting"):
        failover(stubborn, pair.node(pair.standby), sql_dir=SQL_DIR)
    assert node_state(pair.node(pair.standby), SQL_DIR).role == "standby"
    assert node_state(primary, SQL_DIR).role == "primary"


def test_switchover_abandoned_when_the_standby_cannot_catch_up_leaves_the_primary_writable(primary_standby: ReplicationPair) -> None:
    pair = primary_standby
    _create_table(pair)
    with pair.standby.connect() as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    with pair.primary.connect() as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('not yet replayed')")
    with pytest.raises(FailoverError, match="switchover abandoned"):
        switchover(pair.node(pair.primary), pair.node(pair.standby), sql_dir=SQL_DIR, catch_up_timeout_s=1.0)
    with pair.primary.connect() as conn:
        conn.execute("INSERT INTO orders (note) VALUES ('still the primary')")
    assert node_state(pair.node(pair.standby), SQL_DIR).role == "standby"
