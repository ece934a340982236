"""LinUCB (Li et al., 2010): a contextual bandit with one linear model per (node, arm).

Each decision scores every arm a with its ridge-regression estimate plus an exploration
bonus, theta_a . x + alpha * sqrt(x' A_a^-1 x), and takes the best (ties broken by a seeded
generator, so runs are reproducible). A_a^-1 is kept directly and updated with the
Sherman-Morrison formula, so an update costs O(d^2) with d = len(x) and no numpy is needed.
Arms are keyed by node id and label (`caret/x/op`, `skip`), so a melody can be edited without
losing what was learned about the nodes it keeps.
"""

import math
import random


class _Arm:
    __slots__ = ("a_inv", "b", "n", "total")

    def __init__(self, d):
        self.a_inv = [[1.0 if i == j else 0.0 for j in range(d)] for i in range(d)]
        self.b = [0.0] * d
        self.n = 0
        self.total = 0.0

    def theta(self):
        return [sum(row[j] * self.b[j] for j in range(len(self.b))) for row in self.a_inv]

    def width(self, x):
        ax = [sum(row[j] * x[j] for j in range(len(x))) for row in self.a_inv]
        return math.sqrt(max(0.0, sum(x[i] * ax[i] for i in range(len(x)))))

    def score(self, x, alpha):
        theta = self.theta()
        return sum(t * xi for t, xi in zip(theta, x)) + alpha * self.width(x)

    def update(self, x, reward):
        ax = [sum(row[j] * x[j] for j in range(len(x))) for row in self.a_inv]
        denom = 1.0 + sum(x[i] * ax[i] for i in range(len(x)))
        d = len(x)
        for i in range(d):
            for j in range(d):
                self.a_inv[i][j] -= ax[i] * ax[j] / denom
        for i in range(d):
            self.b[i] += reward * x[i]
        self.n += 1
        self.total += reward

    def to_json(self):
        return {"a_inv": self.a_inv, "b": self.b, "n": self.n, "total": self.total}

    @classmethod
    def from_json(cls, data):
        arm = cls(len(data["b"]))
        arm.a_inv = [list(map(float, row)) for row in data["a_inv"]]
        arm.b = list(map(float, data["b"]))
        arm.n = int(data["n"])
        arm.total = float(data["total"])
        return arm


class LinUCB:
    """The default Maestro policy."""

    def __init__(self, seed=0, alpha=0.6):
        self.alpha = alpha
        self.rng = random.Random(seed)
        self.arms = {}

    @staticmethod
    def _key(ask, label):
        return f"{ask['node']}#{label}"

    def _labels(self, ask):
        labels = [(i, label) for i, label in enumerate(ask["arms"]) if i not in ask.get("tried", [])]
        if ask.get("skippable") and not ask.get("tried"):
            labels.append(("skip", "skip"))
        return labels

    def _arm(self, ask, label):
        key = self._key(ask, label)
        if key not in self.arms:
            self.arms[key] = _Arm(len(ask["features"]))
        return self.arms[key]

    def decide(self, ask):
        x = ask["features"]
        best, best_score = [], None
        for choice, label in self._labels(ask):
            s = self._arm(ask, label).score(x, self.alpha)
            if best_score is None or s > best_score + 1e-12:
                best, best_score = [choice], s
            elif abs(s - best_score) <= 1e-12:
                best.append(choice)
        choice = self.rng.choice(best)
        return {"action": "skip"} if choice == "skip" else {"action": "run", "arm": choice}

    def update(self, ask, choice, reward):
        label = "skip" if choice.get("action") == "skip" else ask["arms"][choice["arm"]]
        self._arm(ask, label).update(ask["features"], float(reward))

    def state(self):
        return {
            "policy": "linucb",
            "alpha": self.alpha,
            "rng": repr(self.rng.getstate()),
            "arms": {k: a.to_json() for k, a in self.arms.items()},
        }

    def load(self, state):
        if state.get("policy") != "linucb":
            raise ValueError(f"not a LinUCB checkpoint: {state.get('policy')!r}")
        self.alpha = float(state.get("alpha", self.alpha))
        self.arms = {k: _Arm.from_json(v) for k, v in state.get("arms", {}).items()}
        if "rng" in state:
            import ast

            self.rng.setstate(_tuple(ast.literal_eval(state["rng"])))

    def stats(self):
        out = []
        for key, arm in sorted(self.arms.items()):
            node, _, label = key.partition("#")
            d = len(arm.b)
            x = [1.0] + [0.0] * (d - 1)
            out.append(
                {
                    "node": node,
                    "arm": label,
                    "choices": arm.n,
                    "mean_reward": (arm.total / arm.n) if arm.n else None,
                    "confidence": self.alpha * arm.width(x),
                }
            )
        return out


def _tuple(value):
    """random.setstate wants tuples all the way down; JSON round trips give lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuple(v) for v in value)
    return value
