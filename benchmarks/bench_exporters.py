"""Exporter scrape time: each exporter's /metrics against the test servers (target < 200 ms, issue 12).

Starts the monitoring tier of tests/fixtures/prometheus.py without Prometheus — PostgreSQL 15 and a
second one for TimescaleDB's place with the local-db service databases, Redis 7, each with Debian's
exporter logged in as its monitoring identity (monitoring/identities.toml) — holds --sessions idle
client sessions on PostgreSQL (pg_stat_activity rows for the exporter to count), then times
--scrapes full HTTP scrapes per exporter after --warmup untimed ones. The verdict is on the p95 of
each exporter; median, max and the exporter's own last_scrape_duration are printed beside it.
Exits 1 when an exporter misses the target.

    python benchmarks/bench_exporters.py [--scrapes 50] [--warmup 3] [--sessions 40]

For reference it also times one scrape of the PostgreSQL exporter while its server is stopped (what
Prometheus waits for when an instance is down; not part of the target).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.fixtures.postgres_server import init_pg_template  # noqa: E402
from tests.fixtures.prometheus import exported_tier  # noqa: E402

TARGET_MS = 200.0
SELF_REPORTED = {
    "postgres": "pg_exporter_last_scrape_duration_seconds",
    "timescale": "pg_exporter_last_scrape_duration_seconds",
    "redis": "redis_exporter_last_scrape_duration_seconds",
}


def scrape_ms(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = requests.get(url, timeout=10)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.text


def self_reported_ms(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1]) * 1000
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=40, help="idle sessions held on PostgreSQL while scraping")
    args = parser.parse_args()

    template = init_pg_template()
    try:
        return measure(template, args)
    finally:
        shutil.rmtree(template.parent, ignore_errors=True)


def measure(template: Path, args: argparse.Namespace) -> int:
    with exported_tier(template, standby=False) as servers:
        held = [servers.postgres.connect(dbname=("auth", "portfolio")[i % 2]) for i in range(args.sessions)]
        failed = []
        print(f"exporter scrape (ms, {args.scrapes} scrapes after {args.warmup} warm-up; target p95 < {TARGET_MS:.0f} ms)")
        print(f"  {'exporter':<30} {'median':>8} {'p95':>8} {'max':>8} {'self-reported':>14}   verdict")
        for instance, daemon in servers.exporters.items():
            url = f"{daemon.url}/metrics"
            for _ in range(args.warmup):
                scrape_ms(url)
            times, reported = [], []
            for _ in range(args.scrapes):
                elapsed, text = scrape_ms(url)
                times.append(elapsed)
                reported.append(self_reported_ms(text, SELF_REPORTED[instance]))
            p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
            verdict = "ok" if p95 < TARGET_MS else "MISSED"
            if verdict != "ok":
                failed.append(instance)
            label = f"{daemon.name} ({instance})"
            print(
                f"  {label:<30} {statistics.median(times):8.1f} {p95:8.1f} {max(times):8.1f} {statistics.median(reported):14.1f}   {verdict}"
            )
        for conn in held:
            conn.close()
        servers.timescale.stop()
        down_ms, _ = scrape_ms(f"{servers.exporters['timescale'].url}/metrics")
        print(f"  reference: postgres-exporter scrape with its server stopped: {down_ms:.0f} ms (pg_up 0)")
    if failed:
        print(f"bench_exporters: target missed by {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
