"""`nndb synth`: the same as `python main.py`."""

from __future__ import annotations


def synth() -> None:
    """Synthesize every stack into cdktf.out/stacks/<stack>/cdk.tf.json."""
    from nexanest_db.jsii_env import quiet_node_end_of_life_warning

    quiet_node_end_of_life_warning()
    from nexanest_db.stacks.app import synth_from_environment

    synth_from_environment()
