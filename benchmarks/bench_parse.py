"""Migration preflight parsing vs. pglast's own split of the same file.

Target (issue 9): the preflight split of a 40,000-statement migration (about 2.7 MB) within 3x of
``pglast.parser.split`` on it — the tool's work beyond PostgreSQL's parser (line numbers, the
transaction-control check) must stay linear in the size of the file. Also prints 10k/20k/40k so the
growth is visible (linear: each doubling about doubles the time). Best of --runs per size.
Exits 1 when the target is missed.

    python benchmarks/bench_parse.py [--statements 40000] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pglast import parser  # noqa: E402

from nexanest_db.migration_files import SourceFile, split_statements  # noqa: E402

TARGET_RATIO = 3.0
STATEMENT_KINDS = (
    "-- step {i}\nCREATE TABLE t_{i} (\n    id bigint PRIMARY KEY,\n    name text NOT NULL DEFAULT 'x'\n);\n",
    "INSERT INTO t_{j} (id, name) VALUES ({i}, 'row {i}');\n",
    "CREATE INDEX t_{j}_name_{i} ON t_{j} (name);\n",
    "COMMENT ON TABLE t_{j} IS 'table {i}';\n",
)


def migration_text(statements: int) -> str:
    return "".join(STATEMENT_KINDS[i % len(STATEMENT_KINDS)].format(i=i, j=i - i % len(STATEMENT_KINDS)) for i in range(statements))


def best_of(runs: int, work) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser_args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_args.add_argument("--statements", type=int, default=40_000)
    parser_args.add_argument("--runs", type=int, default=5)
    args = parser_args.parse_args()
    ratio = 0.0
    for count in (args.statements // 4, args.statements // 2, args.statements):
        text = migration_text(count)
        source = SourceFile(path=Path("V001__bench.sql"), display="sql/migrations/bench/V001__bench.sql", text=text)
        assert len(split_statements(source)) == count
        ours = best_of(args.runs, lambda source=source: split_statements(source))
        theirs = best_of(args.runs, lambda text=text: parser.split(text, with_parser=True, only_slices=True))
        ratio = ours / theirs
        print(
            f"{count:>6} statements ({len(text) / 1e6:.1f} MB): preflight split {ours * 1000:8.1f} ms, "
            f"pglast split (baseline) {theirs * 1000:8.1f} ms, ratio {ratio:.2f}x"
        )
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target: preflight within {TARGET_RATIO:g}x of pglast at {args.statements} statements: {ratio:.2f}x {verdict}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
