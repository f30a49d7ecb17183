"""Synthesize every database stack: ``python main.py`` or ``cdktf synth`` (see README.md)."""

import os
import sys
from pathlib import Path


def main() -> int:
    from nexanest_db.edge import quiet_node_end_of_life_warning
    from nexanest_db.errors import NndbError

    quiet_node_end_of_life_warning(os.environ)
    from nexanest_db.stacks.app import synth_project

    try:
        synth_project(Path(__file__).resolve().parent, os.environ)
    except NndbError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
