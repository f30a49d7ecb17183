"""Synthesize every database stack: ``python main.py`` or ``cdktf synth`` (see README.md)."""

import os
import sys
from pathlib import Path

# jsii warns on every run that Node 20 is past end-of-life; the pinned cdktf 0.21 works on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def main() -> int:
    from nexanest_db.errors import NndbError
    from nexanest_db.stacks.app import synth_from_environment

    try:
        synth_from_environment(Path(__file__).resolve().parent)
    except NndbError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
