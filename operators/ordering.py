"""Release signals in event-time order once every busy input partition has passed them.

On a backlog the consumer reads partitions unevenly: the small
`email.complaints` partition is read to its end in one poll while
`email.deliveries` still has an hour to go. Judging complaints against the
deliveries read so far would see absurd rates. The gate holds each signal
until every partition that still has data (is not idle) has shown an event at
least as new, then releases signals sorted by event time. Idle partitions (the
last poll returned nothing, or end of input) do not hold anything back, so in
a live stream the delay is one poll.

>>> gate = EventTimeGate()
>>> gate.add([(5, "complaint")], {"complaints/0": 5}, set(), ["complaints/0", "deliveries/0"])
[]
>>> gate.add([], {}, idle=set())  # deliveries/0 has shown nothing yet: wait for it
[]
>>> gate.add([(1, "d1"), (4, "d4")], {"deliveries/0": 4}, idle=set())
[(1, 'd1'), (4, 'd4')]
>>> gate.add([(6, "d6")], {"deliveries/0": 6}, idle={"complaints/0"})
[(5, 'complaint'), (6, 'd6')]
>>> gate.held
0
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any


class EventTimeGate:
    """Holds `(ts, item)` pairs until the watermark over busy partitions passes them."""

    __slots__ = ("_heap", "_progress", "_known", "_seq", "watermark", "slack_ms", "tiebreak")

    def __init__(self, slack_ms: int = 0, tiebreak: Callable[[Any], Any] | None = None) -> None:
        #: Orders items with equal event time (e.g. by source position) so the release
        #: order does not depend on how the input was batched; default: arrival order.
        #: Must be a module-level function (snapshots are pickled).
        self.tiebreak = tiebreak
        #: Disorder tolerated within this much event time: in a live stream every
        #: partition is within a fraction of a second of the others, so nothing waits.
        self.slack_ms = slack_ms
        self._heap: list[tuple[int, Any, int, Any]] = []
        self._progress: dict[str, int] = {}
        self._known: set[str] = set()  # partitions named so far, seen or not
        self._seq = 0  # ties keep arrival order: deterministic
        self.watermark = -1

    @property
    def held(self) -> int:
        return len(self._heap)

    def add(self, items: Iterable[tuple[int, Any]], progress: dict[str, int],
            idle: set[str], partitions: Iterable[str] = ()) -> list[tuple[int, Any]]:
        """Take new items and partition progress (newest event time per partition).

        `partitions` names every input partition: one that has shown nothing yet
        and is not idle holds everything back."""
        tiebreak = self.tiebreak
        for ts, item in items:
            heapq.heappush(self._heap, (ts, tiebreak(item) if tiebreak else 0, self._seq, item))
            self._seq += 1
        for partition, ts in progress.items():
            if ts > self._progress.get(partition, -1):
                self._progress[partition] = ts
        return self.release(idle, partitions)

    def release(self, idle: set[str], partitions: Iterable[str] = ()) -> list[tuple[int, Any]]:
        """Everything at or below the watermark of the partitions that are not idle."""
        progress, known = self._progress, self._known
        known.update(partitions)
        busy = [ts for p, ts in progress.items() if p not in idle]
        busy += [-1 for p in known if p not in progress and p not in idle]
        if busy:
            self.watermark = max(self.watermark, min(busy))
        elif self._heap:
            self.watermark = max(self.watermark, max(entry[0] for entry in self._heap))
        out = []
        heap = self._heap
        limit = self.watermark + self.slack_ms
        while heap and heap[0][0] <= limit:
            ts, _tie, _seq, item = heapq.heappop(heap)
            out.append((ts, item))
        return out

    def flush(self) -> list[tuple[int, Any]]:
        """End of input: everything, in event-time order."""
        out = [(entry[0], entry[3]) for entry in sorted(self._heap, key=lambda e: e[:3])]
        self._heap = []
        return out
