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

    More successes than trials happen between counters of different windows (this
    hour's unsubscribes about last hour's deliveries): the rate is then taken as 1.

    >>> round(wilson_lower_bound(5, 2), 4) == round(wilson_lower_bound(2, 2), 4)
    True
    """
    if trials <= 0:
        return 0.0
    p = min(max(successes / trials, 0.0), 1.0)
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

    def between(self, start_ms: int, end_ms: int) -> list[int]:
        """Totals over the buckets that start in [start_ms, end_ms), within the window.

        A view of part of the window: e.g. the deliveries whose complaints have
        had time to arrive (those older than the complaint lag).

        >>> w = RollingCounts(kinds=1, bucket_s=60, buckets=10)
        >>> [w.add(m * 60_000, 0) for m in range(5)] and w.between(60_000, 180_000)
        [2]
        """
        out = [0] * self.kinds
        if self._head < 0:
            return out
        first = max(-(-start_ms // self.bucket_ms), self._head - self.buckets + 1, 0)
        last = min(-(-end_ms // self.bucket_ms) - 1, self._head)
        k = self.kinds
        for b in range(first, last + 1):
            base = (b % self.buckets) * k
            for i in range(k):
                out[i] += self._slots[base + i]
        return out

    def between_kind(self, start_ms: int, end_ms: int, kind: int) -> int:
        """`between(start_ms, end_ms)[kind]`, summing one kind only (cheaper).

        >>> w = RollingCounts(kinds=2, bucket_s=60, buckets=10)
        >>> [w.add(m * 60_000, m % 2) for m in range(5)] and w.between_kind(0, 300_000, 1)
        2
        """
        if self._head < 0:
            return 0
        first = max(-(-start_ms // self.bucket_ms), self._head - self.buckets + 1, 0)
        last = min(-(-end_ms // self.bucket_ms) - 1, self._head)
        k, n, slots = self.kinds, self.buckets, self._slots
        return sum(slots[(b % n) * k + kind] for b in range(first, last + 1))

    def hours_back(self, kind: int, at_least: int, max_buckets: int) -> int:
        """How many of the newest buckets hold `at_least` of `kind` (all of them if fewer).

        >>> w = RollingCounts(kinds=1, bucket_s=3600, buckets=24)
        >>> [w.add(h * 3_600_000, 0, 100) for h in range(6)] and w.hours_back(0, 250, 24)
        3
        """
        if self._head < 0:
            return 1
        seen, k = 0, self.kinds
        limit = min(max_buckets, self.buckets, self._head + 1)
        for n in range(1, limit + 1):
            seen += self._slots[((self._head - n + 1) % self.buckets) * k + kind]
            if seen >= at_least:
                return n
        return max(limit, 1)

    def clear(self) -> None:
        """Forget every count (a pause starts judging the sender afresh afterwards)."""
        self._slots = array("I", bytes(4 * self.kinds * self.buckets))
        self._totals = [0] * self.kinds
