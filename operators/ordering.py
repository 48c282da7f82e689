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

from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import chain, compress, count, islice
from operator import eq, itemgetter
from typing import Any

_time = itemgetter(0)
_item = itemgetter(1)
_last = itemgetter(-1)


class EventTimeGate:
    """Holds `(ts, item)` pairs until the watermark over busy partitions passes them.

    Pairs leave in (ts, tiebreak(item), arrival) order. The work is done by a few
    C-level sorts and bisects per batch, not a heap push and pop per item: each
    batch becomes a run sorted by time (stable, so arrival order among equal
    times), a release cuts every run at the watermark and merges the cut-off
    heads. `tiebreak` is only called when a release holds equal event times.

    >>> gate = EventTimeGate(tiebreak=str.lower)
    >>> gate.add([(2, "b"), (1, "z"), (2, "A")], {"p/0": 1}, set())
    [(1, 'z')]
    >>> gate.held, gate.flush()
    (2, [(2, 'A'), (2, 'b')])
    """

    __slots__ = ("_runs", "_progress", "_known", "watermark", "slack_ms", "tiebreak", "strict",
                 "open_below")

    def __init__(self, slack_ms: int = 0, tiebreak: Callable[[Any], Any] | None = None,
                 strict: bool = False) -> None:
        #: Orders items with equal event time (e.g. by source position) so the release
        #: order does not depend on how the input was batched; default: arrival order.
        #: Must be a module-level function (snapshots are pickled).
        self.tiebreak = tiebreak
        #: Disorder tolerated within this much event time: in a live stream every
        #: partition is within a fraction of a second of the others, so nothing waits.
        self.slack_ms = slack_ms
        #: Held pairs as runs sorted by time, oldest run first. Runs are only ever merged
        #: with their neighbour (arrival order survives) and each is kept more than twice
        #: the size of the next, so a release bisects O(log held) runs.
        self._runs: list[list[tuple[int, Any]]] = []
        self._progress: dict[str, int] = {}
        self._known: set[str] = set()  # partitions named so far, seen or not
        self.watermark = -1
        #: Strict: release only items *before* the watermark (plus slack). An item at the
        #: watermark may still have company at the same time from another partition, and
        #: equal times must leave together for the order not to depend on arrival.
        self.strict = strict
        #: Every item before this has been released (as far as the partitions tell).
        self.open_below = -1

    @property
    def held(self) -> int:
        return sum(map(len, self._runs))

    def add(self, items: Iterable[tuple[int, Any]], progress: dict[str, int],
            idle: set[str], partitions: Iterable[str] = ()) -> list[tuple[int, Any]]:
        """Take new items and partition progress (newest event time per partition).

        `partitions` names every input partition: one that has shown nothing yet
        and is not idle holds everything back."""
        # A Kafka batch is a few runs already in time order: timsort is near linear here.
        run = sorted(items, key=_time)
        if run:
            self._runs.append(run)
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
            limit = self.watermark + self.slack_ms - (1 if self.strict else 0)
        else:  # every partition idle: nothing is coming that could go first
            if self._runs:
                self.watermark = max(self.watermark, max(run[-1][0] for run in self._runs))
            limit = max(self.watermark, max(progress.values(), default=-1)) + self.slack_ms
        self.open_below = max(self.open_below, limit + 1)
        due, kept = [], []
        for run in self._runs:
            cut = bisect_right(run, limit, key=_time)
            if cut == len(run):
                due.append(run)
            elif cut:
                due.append(run[:cut])
                del run[:cut]
                kept.append(run)
            else:
                kept.append(run)
        self._runs = _balanced(kept)
        return self._in_order(due)

    def discard(self, unwanted: Callable[[Any], bool]) -> int:
        """Drop held items for which `unwanted(item)` is true (erasure); how many went.

        Walks what is held (a gate holds seconds of input, not history).

        >>> gate = EventTimeGate()
        >>> gate.add([(1, "keep"), (2, "drop"), (3, "keep too")], {"p/0": 0}, set())
        []
        >>> gate.discard(lambda item: item == "drop"), gate.flush()
        (1, [(1, 'keep'), (3, 'keep too')])
        """
        dropped = 0
        runs = []
        for run in self._runs:
            kept = [pair for pair in run if not unwanted(pair[1])]
            dropped += len(run) - len(kept)
            if kept:
                runs.append(kept)
        if dropped:
            self._runs = _balanced(runs)
        return dropped

    def flush(self) -> list[tuple[int, Any]]:
        """End of input: everything, in event-time order."""
        if self._runs:
            self.open_below = max(self.open_below, max(run[-1][0] for run in self._runs) + 1)
        due, self._runs = self._runs, []
        return self._in_order(due)

    def __copy__(self) -> EventTimeGate:
        """A gate that later adds and releases do not touch: what a snapshot needs.

        The held pairs themselves are immutable and shared; only containers are copied."""
        twin = EventTimeGate(self.slack_ms, self.tiebreak, self.strict)
        twin.open_below = self.open_below
        twin._runs = [run.copy() for run in self._runs]
        twin._progress = self._progress.copy()
        twin._known = self._known.copy()
        twin.watermark = self.watermark
        return twin

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        _dict, slots = state
        # Snapshots from before the runs held a heap of (ts, tiebreak, seq, item).
        self.strict, self.open_below = False, -1  # snapshots from before they existed
        heap = slots.pop("_heap", None)
        slots.pop("_seq", None)
        for name, value in slots.items():
            setattr(self, name, value)
        if heap is not None:
            self._runs = [[(e[0], e[3]) for e in sorted(heap, key=lambda e: e[:3])]] if heap else []

    def _in_order(self, runs: list[list[tuple[int, Any]]]) -> list[tuple[int, Any]]:
        """One list from runs that arrived in this order: by time, then tiebreak, then arrival."""
        if not runs:
            return []
        # Timsort merges the runs in linear time; stable, so equal times keep arrival order.
        out = runs[0] if len(runs) == 1 else sorted(chain.from_iterable(runs), key=_time)
        return out if self.tiebreak is None else _break_ties(out, self.tiebreak)


def _balanced(runs: list[list[tuple[int, Any]]]) -> list[list[tuple[int, Any]]]:
    """Merge neighbours until each run is more than twice the next: O(log held) runs left,
    and every item merged O(log held) times over its stay."""
    stack: list[list[tuple[int, Any]]] = []
    for run in runs:
        while stack and len(stack[-1]) <= 2 * len(run):
            older = stack.pop()
            older += run
            older.sort(key=_time)
            run = older
        stack.append(run)
    return stack


def _break_ties(out: list[tuple[int, Any]], tiebreak: Callable[[Any], Any]
                ) -> list[tuple[int, Any]]:
    """`out` sorted by time and arrival, re-ordered by `tiebreak` within equal times."""
    times = list(map(_time, out))
    tied = list(compress(count(), map(eq, times, islice(times, 1, None))))  # i: t[i] == t[i+1]
    if not tied:
        return out
    if len(tied) * 8 > len(out):  # many ties: one decorated sort beats a slice per group
        return list(map(_last, sorted(zip(times, map(tiebreak, map(_item, out)), count(), out))))
    key = lambda pair: tiebreak(pair[1])  # noqa: E731
    start = end = tied[0]
    for i in chain(islice(tied, 1, None), (-2,)):
        if i == end + 1:
            end = i
            continue
        out[start:end + 2] = sorted(out[start:end + 2], key=key)  # stable: arrival among ties
        start = end = i
    return out
