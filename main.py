"""Synthesize every database stack: ``python main.py`` or ``cdktf synth`` (see README.md)."""

import sys
from pathlib import Path


def main() -> int:
    from nexanest_db.errors import NndbError
    from nexanest_db.jsii_env import quiet_node_end_of_life_warning

    quiet_node_end_of_life_warning()
    from nexanest_db.stacks.app import synth_from_environment

    try:
        synth_from_environment(Path(__file__).resolve().parent)
    except NndbError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
