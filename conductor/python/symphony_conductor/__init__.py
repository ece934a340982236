"""The Conductor's Python package: how Maestro mode decides, per melody node, to run it as
written, run one of its alternatives, retry with another, or skip it — and how it learns.

The kernel embeds CPython and drives a policy through four methods:

    decide(ask) -> {"action": "run", "arm": k} | {"action": "skip"}
    update(ask, choice, reward)          # after the node ran (reward in [0, 1])
    state() -> dict / load(state)        # checkpoint, saved after every run
    stats() -> [{node, arm, choices, mean_reward, confidence}]

`ask` is {"node", "arms": [labels], "skippable", "tried": [arm indices], "features": [floats]}.
The kernel checks every answer: an unsafe skip, an arm already tried or out of range, an
exception or a decision slower than the time limit fall back to Manual for that node.
`LinUCB` is the default policy; `--policy file.py` loads a class named `Policy` instead.
"""

from symphony_conductor.policy import LinUCB

__all__ = ["LinUCB"]
