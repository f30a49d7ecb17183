"""Process settings for the jsii runtime that cdktf runs on, applied by the entry points that synth."""

from __future__ import annotations

import os


def quiet_node_end_of_life_warning() -> None:
    """jsii prints a boxed warning on every run that Node 20 is past end-of-life; the pinned cdktf 0.21
    works on it, and the box would bury the one-line errors. Call before the first ``import cdktf``."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
