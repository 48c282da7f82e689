"""Rolling convergence metrics per mailflow, refreshed as event time advances.

Definitions (windows `[as_of - W, as_of)`, W in 1h, 24h, 7d; `as_of` a whole minute):

- **entered**: distinct recipients delivered at least one message of the flow
  in the window.
- **converged**: distinct recipients among those with a conversion in the
  window that is attributed to the flow: the same sender delivered a message
  of the flow to the recipient within the attribution window (default 7 days)
  before the conversion.
- **convergence_score** = converged / entered.
- **engagement_depth**: human interactions (human opens, human clicks, replies,
  attributed conversions) in the window per entered recipient;
  `engagement_depth_raw` counts machine opens and bot clicks too.
- **latency_p50_s / latency_p90_s**: time from delivery to the first human
  interaction with a message of the flow, over first interactions in the
  window (exact quantiles, ClickHouse `quantileExact` convention:
  the value at index ⌊level·n⌋ of the sorted values).
- **negative_rate**: (hard bounces + complaints + unsubscribes) / deliveries,
  all of the flow's messages, in the window.

Feed facts in event-time order through `observe`. Rows follow each flow's own
activity: when the stream first passes a minute boundary after flow f had facts
(in that minute, or since its last row), `observe` returns f's rows with
``as_of = (the minute of f's latest fact + 1) * 60,000``, computed from exactly
f's facts before that time, before counting the fact that crossed it. A flow
without facts writes no rows (its last rows still hold), and its rows never
depend on other flows' events. `flush()` (end of input) returns every flow's
rows still due. A fact of a minute already reported is counted (later rows
include it) but does not change the rows already written.

Cost is proportional to what changes, never to what is held: per flow, each
recipient's latest delivery (ld) and latest conversion (lc) are kept in dicts,
and per minute the number of recipients whose ld falls in it and whose
min(ld, lc) falls in it, plus the five counters and the latencies of the
minute. A fact moves one recipient between minutes (a delta on two minute
counts and on each window's running sums). Each window keeps running sums and
its own start minute; a row moves the start past the minutes that left the
window (subtracting them: every minute is subtracted once per window in the
whole stream) and reads the sums. Because as_of and the windows are whole
minutes and every counted fact is before as_of, a recipient has entered a
window ``[as_of - W, as_of)`` iff ld >= as_of - W, and has converged in it iff
min(ld, lc) >= as_of - W. Latencies sit in a sorted container per window
(insert and remove cost about the square root of its size; no re-sort per
row). Recipients, minutes and latencies older than the longest window are
dropped as the windows move past them.

>>> book = ConvergenceBook(windows={"1h": 3600})
>>> book.observe(FlowFact(0, "welcome", "r1", DELIVERY))
[]
>>> book.observe(FlowFact(30_000, "welcome", "r1", CONVERSION))
[]
>>> rows = book.observe(FlowFact(61_000, "other", "r2", DELIVERY))
>>> [(r.flow_id, r.window, r.as_of_ms, r.entered, r.converged, r.convergence_score)
...  for r in rows]
[('welcome', '1h', 60000, 1, 1, 1.0)]
>>> [(r.flow_id, r.as_of_ms, r.entered)  # welcome was quiet: no row of it
...  for r in book.observe(FlowFact(5 * 60_000, "", "", DELIVERY))]
[('other', 120000, 1)]
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import NamedTuple

MINUTE_MS = 60_000
WINDOWS = {"1h": 3600, "24h": 86_400, "7d": 604_800}

# Fact kinds; the first five are counted per minute, LATENCY only records a latency.
DELIVERY, HUMAN_INTERACTION, MACHINE_INTERACTION, CONVERSION, NEGATIVE, LATENCY = range(6)
_COUNTERS = 5
#: A latency container's blocks hold up to 2 * _BLOCK values.
_BLOCK = 256


class FlowFact(NamedTuple):
    ts_ms: int
    flow_id: str
    recipient_hash: str
    kind: int
    latency_s: float = 0.0  # first human interaction with a message: its response latency


class ConvergenceRow(NamedTuple):
    flow_id: str
    window: str
    as_of_ms: int
    entered: int
    converged: int
    convergence_score: float
    engagement_depth: float
    engagement_depth_raw: float
    latency_p50_s: float
    latency_p90_s: float
    negative_rate: float
    deliveries: int
    human_interactions: int
    conversions: int
    negatives: int
    latency_n: int


def quantile_exact(sorted_values: list[float], level: float) -> float:
    """ClickHouse `quantileExact`: the element at index floor(level * n)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    return float(sorted_values[min(n - 1, int(level * n))])


class SortedFloats:
    """Floats in ascending order, in blocks: add and remove cost O(block + blocks), the k-th
    value O(blocks); never a sort of everything held.

    >>> values = SortedFloats()
    >>> for v in (3.0, 1.0, 2.0, 2.0):
    ...     values.add(v)
    >>> values.remove(2.0)
    >>> len(values), [values[i] for i in range(len(values))]
    (3, [1.0, 2.0, 3.0])
    """

    __slots__ = ("blocks", "maxes", "n")

    def __init__(self) -> None:
        self.blocks: list[list[float]] = []
        self.maxes: list[float] = []  # the last (largest) value of each block
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def add(self, value: float) -> None:
        blocks, maxes = self.blocks, self.maxes
        self.n += 1
        if not blocks:
            blocks.append([value])
            maxes.append(value)
            return
        i = bisect_left(maxes, value)
        if i == len(maxes):  # beyond every block: the last one grows
            i -= 1
            block = blocks[i]
            block.append(value)
            maxes[i] = value
        else:
            block = blocks[i]
            insort(block, value)
        if len(block) > 2 * _BLOCK:
            blocks[i:i + 1] = [block[:_BLOCK], block[_BLOCK:]]
            maxes[i:i + 1] = [block[_BLOCK - 1], block[-1]]

    def remove(self, value: float) -> None:
        """Remove one occurrence of `value` (which must be held)."""
        i = bisect_left(self.maxes, value)
        block = self.blocks[i]
        del block[bisect_left(block, value)]
        self.n -= 1
        if block:
            self.maxes[i] = block[-1]
        else:
            del self.blocks[i]
            del self.maxes[i]

    def __getitem__(self, k: int) -> float:
        for block in self.blocks:
            if k < len(block):
                return block[k]
            k -= len(block)
        raise IndexError(k)


def _quantile(values: SortedFloats, level: float) -> float:
    """`quantile_exact` of the values held."""
    n = len(values)
    return float(values[min(n - 1, int(level * n))]) if n else 0.0


class _Minute:
    """What one flow holds about one minute (only minutes with facts have one)."""

    __slots__ = ("entered", "converged", "counts", "latencies", "recipients")

    def __init__(self) -> None:
        self.entered = 0  # recipients whose latest delivery fell in this minute
        self.converged = 0  # recipients whose min(latest delivery, latest conversion) did
        self.counts = [0] * _COUNTERS
        self.latencies: list[float] = []
        self.recipients: list[str] = []  # whose ld or lc was set in it (for dropping them)


class _Flow:
    """One flow: per-recipient latest times, minutes with facts, per-window running sums."""

    __slots__ = ("delivered", "converted", "minutes", "start", "entered", "converged",
                 "counts", "latencies", "floor", "head", "reported", "as_of")

    def __init__(self, first_minute: int, windows: list[int]):
        span = max(windows)
        self.delivered: dict[str, int] = {}  # recipient -> latest delivery ms
        self.converted: dict[str, int] = {}  # recipient -> latest conversion ms
        self.minutes: dict[int, _Minute] = {}
        # Per window (in the book's order): first minute counted, and the running sums of
        # everything counted from it on.
        self.start = [first_minute - span] * len(windows)
        self.entered = [0] * len(windows)
        self.converged = [0] * len(windows)
        self.counts = [[0] * _COUNTERS for _ in windows]
        self.latencies = [SortedFloats() for _ in windows]
        self.floor = first_minute - span  # min(start): minutes before it are dropped
        self.head = -1  # minute of the latest fact
        self.reported = -1  # head when the last row was written
        self.as_of = -1  # minute of the last row's as_of

    def minute(self, m: int) -> _Minute:
        held = self.minutes.get(m)
        if held is None:
            held = self.minutes[m] = _Minute()
        return held

    def move(self, entered: bool, old: int | None, new: int | None) -> None:
        """One recipient's ld (`entered`) or min(ld, lc) moved from `old` to `new` (ms)."""
        start = self.start
        totals = self.entered if entered else self.converged
        if old is not None:
            m = old // MINUTE_MS
            if m >= self.floor:
                held = self.minutes[m]
                if entered:
                    held.entered -= 1
                else:
                    held.converged -= 1
                for w, first in enumerate(start):
                    if m >= first:
                        totals[w] -= 1
        if new is not None:
            m = new // MINUTE_MS
            if m >= self.floor:
                held = self.minute(m)
                if entered:
                    held.entered += 1
                else:
                    held.converged += 1
                for w, first in enumerate(start):
                    if m >= first:
                        totals[w] += 1

    def leaving(self, first: int, end: int) -> list[int]:
        """Minutes with facts in [first, end), ascending: a walk over the range or over the
        minutes held, whichever is shorter."""
        if end - first <= 2 * len(self.minutes):
            return [m for m in range(first, end) if m in self.minutes]
        return sorted(m for m in self.minutes if first <= m < end)


def _converged_at(delivered: int | None, converted: int | None) -> int | None:
    return min(delivered, converted) if delivered is not None and converted is not None else None


class ConvergenceBook:
    """Convergence state of every flow; `observe(fact)` returns the rows that fell due."""

    def __init__(self, windows: dict[str, int] | None = None):
        self.windows = dict(windows or WINDOWS)
        for name, seconds in self.windows.items():
            if seconds <= 0 or seconds % 60:
                raise ValueError(f"window {name!r} must be a positive whole number of minutes,"
                                 f" got {seconds} s")
        self._window_minutes = [seconds // 60 for seconds in self.windows.values()]
        self.span_minutes = max(self._window_minutes)
        self.flows: dict[str, _Flow] = {}
        self.minute = -1  # the minute of the newest fact (as_of boundaries follow it)
        self.late = 0
        self._due: set[str] = set()  # flows with facts of minutes not reported yet

    def observe(self, fact: FlowFact) -> list[ConvergenceRow]:
        minute = fact.ts_ms // MINUTE_MS
        rows: list[ConvergenceRow] = []
        if minute > self.minute:
            if self._due:
                rows = self.flush()
            self.minute = minute
        elif minute < self.minute:
            self.late += 1  # already reported minutes do not change; later rows include it
        if fact.flow_id:
            self._count(fact, minute)
        return rows

    def forget(self, recipient_hash: str) -> int:
        """Drop one recipient from every flow (erasure); how many flows held them.

        Later rows no longer count them as entered or converged; minute counters and
        latencies are anonymous sums and stay. Two dict lookups per flow, and a scan of the
        flow's minutes for the recipient's expiry entries.

        >>> book = ConvergenceBook(windows={"1h": 3600})
        >>> _ = book.observe(FlowFact(0, "welcome", "r1", DELIVERY))
        >>> _ = book.observe(FlowFact(1_000, "welcome", "r2", DELIVERY))
        >>> book.forget("r1"), "r1" in book.flows["welcome"].delivered
        (1, False)
        >>> [(r.entered, r.deliveries) for r in book.flush()]
        [(1, 2)]
        """
        dropped = 0
        for flow in self.flows.values():
            delivered = flow.delivered.pop(recipient_hash, None)
            converted = flow.converted.pop(recipient_hash, None)
            if delivered is None and converted is None:
                continue
            flow.move(True, delivered, None)
            flow.move(False, _converged_at(delivered, converted), None)
            # The minutes' expiry lists must not name an erased person either (a C-level
            # scan per minute held; erasures are rare).
            for held in flow.minutes.values():
                if recipient_hash in held.recipients:
                    held.recipients = [r for r in held.recipients if r != recipient_hash]
            dropped += 1
        return dropped

    def flush(self) -> list[ConvergenceRow]:
        """The rows due: each flow with facts since its last row, as of the end of the
        minute of its latest fact (also the end of input)."""
        rows: list[ConvergenceRow] = []
        for flow_id in sorted(self._due):
            flow = self.flows[flow_id]
            rows += self._rows(flow_id, flow, flow.head + 1)
            flow.reported = flow.head
        self._due = set()
        return rows

    def rows_at(self, as_of_ms: int) -> list[ConvergenceRow]:
        """Every flow's rows as of `as_of_ms` (a whole minute, after every fact counted and
        not before any earlier row: the windows only move forward)."""
        as_of = as_of_ms // MINUTE_MS
        return [row for flow_id in sorted(self.flows)
                for row in self._rows(flow_id, self.flows[flow_id], as_of)]

    def _count(self, fact: FlowFact, minute: int) -> None:
        flow = self.flows.get(fact.flow_id)
        if flow is None:
            flow = self.flows[fact.flow_id] = _Flow(minute, self._window_minutes)
        if minute < flow.floor:
            return  # older than the longest window of any row to come: nothing to count
        if minute > flow.head:
            flow.head = minute
        if minute > flow.reported:
            self._due.add(fact.flow_id)
        kind = fact.kind
        held = flow.minute(minute)
        if kind < _COUNTERS:
            held.counts[kind] += 1
            for w, first in enumerate(flow.start):
                if minute >= first:
                    flow.counts[w][kind] += 1
        if fact.latency_s > 0:
            held.latencies.append(fact.latency_s)
            for w, first in enumerate(flow.start):
                if minute >= first:
                    flow.latencies[w].add(fact.latency_s)
        if kind == DELIVERY or kind == CONVERSION:
            r, ts = fact.recipient_hash, fact.ts_ms
            delivered, converted = flow.delivered.get(r), flow.converted.get(r)
            before = _converged_at(delivered, converted)
            if kind == DELIVERY:
                if delivered is not None and ts <= delivered:
                    return
                flow.delivered[r] = ts
                flow.move(True, delivered, ts)
                delivered = ts
            else:
                if converted is not None and ts <= converted:
                    return
                flow.converted[r] = converted = ts
            after = _converged_at(delivered, converted)
            if after != before:
                flow.move(False, before, after)
            held.recipients.append(r)

    def _advance(self, flow: _Flow, as_of: int) -> None:
        """Move every window's start to as_of - W, subtracting the minutes that left; drop
        what no window reaches any more."""
        for w, width in enumerate(self._window_minutes):
            first, new = flow.start[w], as_of - width
            if new <= first:
                continue
            counts, latencies = flow.counts[w], flow.latencies[w]
            for m in flow.leaving(first, new):
                held = flow.minutes[m]
                flow.entered[w] -= held.entered
                flow.converged[w] -= held.converged
                for k in range(_COUNTERS):
                    counts[k] -= held.counts[k]
                for latency in held.latencies:
                    latencies.remove(latency)
            flow.start[w] = new
        floor = min(flow.start)
        if floor > flow.floor:
            for m in flow.leaving(flow.floor, floor):
                for r in flow.minutes.pop(m).recipients:
                    delivered = flow.delivered.get(r)
                    converted = flow.converted.get(r)
                    if max(delivered or -1, converted or -1) // MINUTE_MS < floor:
                        flow.delivered.pop(r, None)  # outside every window from now on
                        flow.converted.pop(r, None)
            flow.floor = floor

    def _rows(self, flow_id: str, flow: _Flow, as_of: int) -> list[ConvergenceRow]:
        if as_of < flow.as_of:
            raise ValueError(f"rows of flow {flow_id!r} as of minute {as_of} after rows as of "
                             f"minute {flow.as_of}: the windows only move forward")
        self._advance(flow, as_of)
        flow.as_of = as_of
        as_of_ms = as_of * MINUTE_MS
        rows = []
        for w, name in enumerate(self.windows):
            entered, converged = flow.entered[w], flow.converged[w]
            deliveries, human, machine, conversions, negatives = flow.counts[w]
            latencies = flow.latencies[w]
            interactions = human + conversions
            rows.append(ConvergenceRow(
                flow_id, name, as_of_ms, entered, converged,
                round(converged / entered, 6) if entered else 0.0,
                round(interactions / entered, 6) if entered else 0.0,
                round((interactions + machine) / entered, 6) if entered else 0.0,
                _quantile(latencies, 0.5), _quantile(latencies, 0.9),
                round(negatives / deliveries, 6) if deliveries else 0.0,
                deliveries, interactions, conversions, negatives, len(latencies)))
        return rows
