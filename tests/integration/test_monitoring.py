"""The shipped rules in a real Prometheus, scraping Debian's exporters in front of real test servers.

One Prometheus for the module (tests/fixtures/prometheus.py, ``monitored_tier``), loading
monitoring/rules/*.yml unchanged, with a 2 s scrape and a 1 s evaluation interval. The phases
depend on each other (healthy first, then the faults), so they are one test: under pytest-xdist
separate tests of this module could land on two workers, each with its own Prometheus and state.

1. Healthy: every target up, every shipped rule loaded and evaluating without error, every metric
   the rules read present (from the real exporters — a live standby gives the replication series —
   and from nndb's state textfile via node_exporter), and no alert pending or firing.
2. Faults, all at once so the `for:` waits overlap: TimescaleDB and Redis stopped, PostgreSQL's
   connections filled past 80% of max_connections, one database's newest verified backup made two
   days old. Exactly the matching alerts fire, within a bound derived from the rules' own `for:`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.fixtures.prometheus import STACK, MonitoredTier
from tests.support.rules import load_rules, referenced_metrics

pytestmark = pytest.mark.integration

T = TypeVar("T")
SCRAPES_TO_SETTLE_S = 30  # first scrapes, first evaluations, two samples for every rate()
QUIET_WINDOW_S = 12  # a dozen evaluations with nothing pending
FIRE_MARGIN_S = 60  # beyond the longest `for:` of the expected alerts (scrape, evaluation, stop latency)
EXPECTED_FAULT_ALERTS = {
    ("NndbInstanceDown", "timescale"),
    ("NndbInstanceDown", "redis"),
    ("NndbPostgresConnectionsNearLimit", "postgres"),
    ("NndbBackupOverdue", "postgres"),
}
FILL_TO_RATIO = 0.86


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 1.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and the last observation."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s", pytrace=False)
        time.sleep(interval)


def _for_seconds(value: str | None) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(value[:-1]) * units[value[-1]] if value else 0


def _alerts_by_name_and_instance(tier: MonitoredTier) -> dict[tuple[str, str], dict]:
    return {(alert["labels"]["alertname"], alert["labels"].get("instance", "")): alert for alert in tier.prometheus.alerts()}


def test_quiet_while_healthy_then_the_faults_fire_their_alerts(monitored_tier: MonitoredTier) -> None:
    tier = monitored_tier
    prometheus = tier.prometheus

    # --- 1. healthy ----------------------------------------------------------------------------
    targets = wait_until(
        lambda: (t := prometheus.targets()) and len(t) == 4 and all(target["health"] == "up" for target in t) and t,
        timeout=SCRAPES_TO_SETTLE_S,
        what="all four targets (postgres, timescale, redis exporters; node_exporter) up",
    )
    assert {(t["labels"]["job"], t["labels"]["stack"], t["labels"].get("instance", "")) for t in targets} >= {
        ("nndb-postgres", STACK, "postgres"),
        ("nndb-postgres", STACK, "timescale"),
        ("nndb-redis", STACK, "redis"),
    }

    shipped = {(rule.group, rule.name) for rule in load_rules()}

    def all_rules_evaluated() -> list[dict] | None:
        loaded = [(group["name"], rule) for group in prometheus.rule_groups() for rule in group["rules"]]
        evaluated = all(rule["health"] == "ok" for _, rule in loaded)
        return [rule for _, rule in loaded] if evaluated and {(g, r["name"]) for g, r in loaded} == shipped else None

    loaded = wait_until(all_rules_evaluated, timeout=SCRAPES_TO_SETTLE_S, what="every shipped rule loaded and evaluated without error")
    assert not [rule["name"] for rule in loaded if rule.get("lastError")]

    def missing_metrics() -> set[str]:
        return {name for name in referenced_metrics() if not prometheus.query(f'count({{__name__="{name}", stack="{STACK}"}})')}

    wait_until(lambda: not missing_metrics() or None, timeout=SCRAPES_TO_SETTLE_S, what="series for every metric the rules read")
    assert not missing_metrics()
    # The standby is streaming: the replication series describe it.
    replication = prometheus.query('pg_stat_replication_pg_wal_lsn_diff{instance="postgres"}')
    assert [series["metric"]["application_name"] for series in replication] == ["postgres_replica_1"]
    assert float(prometheus.query('pg_replication_slots_active{slot_name="postgres_replica_1"}')[0]["value"][1]) == 1

    time.sleep(SCRAPES_TO_SETTLE_S / 3)  # rate()/increase() windows hold several samples now
    quiet_until = time.monotonic() + QUIET_WINDOW_S
    while time.monotonic() < quiet_until:
        noisy = [(a["labels"]["alertname"], a["labels"].get("instance"), a["state"]) for a in prometheus.alerts()]
        assert not noisy, f"alerts on a healthy tier: {noisy}"
        time.sleep(1)

    # --- 2. faults -----------------------------------------------------------------------------
    servers = tier.servers
    with servers.postgres.connect() as conn:
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
        in_use = int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL").fetchone()[0])
    held = [servers.postgres.connect() for _ in range(int(max_connections * FILL_TO_RATIO) - in_use)]
    try:
        servers.timescale.stop()
        servers.redis.stop()
        tier.write_state(overdue=("postgres", "portfolio"))
        rules = {rule.name: rule for rule in load_rules()}
        bound = max(_for_seconds(rules[name].for_) for name, _ in EXPECTED_FAULT_ALERTS) + FIRE_MARGIN_S

        def expected_firing() -> dict | None:
            alerts = _alerts_by_name_and_instance(tier)
            firing = {key for key, alert in alerts.items() if alert["state"] == "firing"}
            return alerts if firing >= EXPECTED_FAULT_ALERTS else None

        started = time.monotonic()
        alerts = wait_until(expected_firing, timeout=bound, what=f"firing: {sorted(EXPECTED_FAULT_ALERTS)}", interval=2)
        elapsed = time.monotonic() - started
    finally:
        for conn in held:
            conn.close()

    assert set(alerts) == EXPECTED_FAULT_ALERTS, f"unexpected alerts besides the faults: {sorted(set(alerts) - EXPECTED_FAULT_ALERTS)}"
    assert alerts[("NndbBackupOverdue", "postgres")]["labels"]["database"] == "portfolio"
    assert alerts[("NndbInstanceDown", "redis")]["labels"] == {
        "alertname": "NndbInstanceDown",
        "severity": "critical",
        "stack": STACK,
        "instance": "redis",
    }
    used = float(alerts[("NndbPostgresConnectionsNearLimit", "postgres")]["value"])
    assert 0.8 < used <= 1
    print(f"faults fired in {elapsed:.0f} s (bound {bound} s)")
