"""Moved to `flows.stats` (runtime counters sit below `flows/`, see STYLE.md).

Kept so that `from mailflow.stats import STATS` in user code keeps working;
it is the same `STATS` object, not a copy.
"""

from flows.stats import STATS, JobStats

__all__ = ["STATS", "JobStats"]
