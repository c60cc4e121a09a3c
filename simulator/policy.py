"""How the simulated app acts on a served score (pure): it contacts the subjects scored highest.

The app has capacity for about 30% of the subjects it sees. It contacts a subject when the
served score ranks in the top 30% of the last scores the SAME model version served (so the
rule does not depend on how a version's scores are calibrated, and each A/B arm is judged on
its own ranking), plus a small random exploration share of everyone else. Ties are broken at
random, so a constant score (v0.0, no model) contacts a random 30%. Only contacted subjects
produce an outcome event: a model that ranks well really raises the positive outcome rate.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass, field


@dataclass
class ContactPolicy:
    """Top-`share` by score within a sliding window of each version's served scores."""

    share: float = 0.3
    explore: float = 0.05
    window: int = 500
    # Per (model type, version): the window in arrival order, and the same scores sorted.
    _recent: dict[tuple[str, str], tuple[deque[float], list[float]]] = field(default_factory=dict)

    def should_contact(
        self, model_type: str, version: str, score: float, u: float, v: float
    ) -> bool:
        """u, v: two independent uniform draws in [0, 1) (tie-break and exploration)."""
        arrival, ordered = self._recent.setdefault((model_type, version), (deque(), []))
        below = bisect_left(ordered, score)
        equal = bisect_right(ordered, score) - below
        rank = (below + u * (equal + 1)) / (len(ordered) + 1)
        arrival.append(score)
        insort(ordered, score)
        if len(arrival) > self.window:
            oldest = arrival.popleft()
            del ordered[bisect_left(ordered, oldest)]
        return rank >= 1.0 - self.share or v < self.explore
