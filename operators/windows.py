"""Rolling event-time counters in fixed buckets, and the Wilson lower bound.

A `RollingCounts` keeps, per one-minute bucket, how many of each signal were
seen, and running totals over the whole window. Time only moves forward with
the events themselves; an event older than the window is counted as `late`,
never silently dropped.

>>> w = RollingCounts(kinds=2, bucket_s=60, buckets=3)
>>> [w.add(ts * 1000, 0) for ts in (0, 30, 61, 125)]
[True, True, True, True]
>>> w.totals(), w.recent(1)
([4, 0], [1, 0])
>>> w.add(200_000, 1)          # bucket 3: bucket 0 (two events) leaves the window
True
>>> w.totals()
[2, 1]
>>> w.add(10_000, 0), w.late   # older than the window
(False, 1)
"""

from __future__ import annotations

import math
from array import array


def wilson_lower_bound(successes: int, trials: int, z: float = 1.645) -> float:
    """One-sided lower confidence bound of a proportion (default 95%).

    >>> round(wilson_lower_bound(30, 5000), 4), round(wilson_lower_bound(1, 30), 4)
    (0.0045, 0.0075)
    """
    if trials <= 0:
        return 0.0
    p = successes / trials
    z2 = z * z
    centre = p + z2 / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, (centre - margin) / (1 + z2 / trials))


class RollingCounts:
    """Counts of `kinds` signals over the last `buckets` × `bucket_s` seconds of event time."""

    __slots__ = ("kinds", "bucket_ms", "buckets", "_slots", "_totals", "_head", "late")

    def __init__(self, kinds: int, bucket_s: int = 60, buckets: int = 60):
        self.kinds = kinds
        self.bucket_ms = bucket_s * 1000
        self.buckets = buckets
        self._slots = array("I", bytes(4 * kinds * buckets))
        self._totals = [0] * kinds
        self._head = -1  # absolute index of the newest bucket seen
        self.late = 0

    @property
    def window_s(self) -> int:
        return self.buckets * self.bucket_ms // 1000

    @property
    def head_ms(self) -> int:
        """Start of the newest bucket (the window's notion of now)."""
        return max(self._head, 0) * self.bucket_ms

    def _advance(self, bucket: int) -> None:
        steps = bucket - self._head
        if self._head < 0 or steps >= self.buckets:
            self.clear()
        else:
            k, slots, totals = self.kinds, self._slots, self._totals
            for b in range(self._head + 1, bucket + 1):
                base = (b % self.buckets) * k
                for i in range(k):
                    if slots[base + i]:
                        totals[i] -= slots[base + i]
                        slots[base + i] = 0
        self._head = bucket

    def add(self, ts_ms: int, kind: int, n: int = 1) -> bool:
        """Count one signal; False (and `late` += 1) if it is older than the window."""
        bucket = ts_ms // self.bucket_ms
        if bucket > self._head:
            self._advance(bucket)
        elif bucket <= self._head - self.buckets:
            self.late += n
            return False
        self._slots[(bucket % self.buckets) * self.kinds + kind] += n
        self._totals[kind] += n
        return True

    def totals(self) -> list[int]:
        return list(self._totals)

    def recent(self, buckets: int) -> list[int]:
        """Totals over the newest `buckets` buckets only (a shorter window)."""
        out = [0] * self.kinds
        if self._head < 0:
            return out
        k = self.kinds
        for b in range(max(self._head - min(buckets, self.buckets) + 1, 0), self._head + 1):
            base = (b % self.buckets) * k
            for i in range(k):
                out[i] += self._slots[base + i]
        return out

    def clear(self) -> None:
        """Forget every count (a pause starts judging the sender afresh afterwards)."""
        self._slots = array("I", bytes(4 * self.kinds * self.buckets))
        self._totals = [0] * self.kinds
