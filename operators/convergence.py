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

Feed events in event-time order through `observe`; the book emits the rows of
every minute boundary the stream crosses *before* counting the event that
crosses it, so a row for `as_of` covers exactly the events before `as_of`.

>>> book = ConvergenceBook(windows={"1h": 3600})
>>> book.observe(FlowFact(0, "welcome", "r1", DELIVERY))
[]
>>> book.observe(FlowFact(30_000, "welcome", "r1", CONVERSION))
[]
>>> rows = book.observe(FlowFact(61_000, "welcome", "r2", DELIVERY))
>>> [(r.flow_id, r.window, r.as_of_ms, r.entered, r.converged, r.convergence_score)
...  for r in rows]
[('welcome', '1h', 60000, 1, 1, 1.0)]
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

import numpy as np

MINUTE_MS = 60_000
#: Key prefix of an erased recipient's slot: the slot stays (the arrays are positional)
#: but its key no longer names anybody and its times are reset to "never".
_ERASED = "\x00erased:"
_NEVER = -(2 ** 62)  # "no delivery / conversion yet": before any window
WINDOWS = {"1h": 3600, "24h": 86_400, "7d": 604_800}

# Fact kinds; the first five are counted per minute, LATENCY only records a latency.
DELIVERY, HUMAN_INTERACTION, MACHINE_INTERACTION, CONVERSION, NEGATIVE, LATENCY = range(6)
_COUNTERS = 5


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


def quantile_exact(sorted_values: np.ndarray, level: float) -> float:
    """ClickHouse `quantileExact`: the element at index floor(level * n)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    return float(sorted_values[min(n - 1, int(level * n))])


class _Flow:
    """One flow's state: per-recipient last delivery / conversion, minute counters, latencies."""

    __slots__ = ("index", "last_delivery", "last_conversion", "minutes", "minute_head",
                 "lat_ts", "lat_s")

    def __init__(self, span_minutes: int):
        self.index: dict[str, int] = {}
        self.last_delivery = np.full(64, _NEVER, dtype=np.int64)
        self.last_conversion = np.full(64, _NEVER, dtype=np.int64)
        self.minutes = np.zeros((span_minutes, _COUNTERS), dtype=np.int64)
        self.minute_head = -1
        self.lat_ts = array("q")
        self.lat_s = array("d")

    def slot(self, recipient: str) -> int:
        i = self.index.get(recipient)
        if i is None:
            i = self.index[recipient] = len(self.index)
            if i >= len(self.last_delivery):
                grow = len(self.last_delivery)
                self.last_delivery = np.concatenate(
                    [self.last_delivery, np.full(grow, _NEVER, dtype=np.int64)])
                self.last_conversion = np.concatenate(
                    [self.last_conversion, np.full(grow, _NEVER, dtype=np.int64)])
        return i


class ConvergenceBook:
    """Convergence state of every flow; `observe(fact)` returns rows of crossed minutes."""

    def __init__(self, windows: dict[str, int] | None = None):
        self.windows = dict(windows or WINDOWS)
        self.span_minutes = max(self.windows.values()) // 60
        self.flows: dict[str, _Flow] = {}
        self.minute = -1  # the minute of the newest fact (as_of boundaries follow it)
        self.late = 0

    def observe(self, fact: FlowFact) -> list[ConvergenceRow]:
        minute = fact.ts_ms // MINUTE_MS
        rows: list[ConvergenceRow] = []
        if minute > self.minute:
            if self.minute >= 0:
                rows = self.rows_at(minute * MINUTE_MS)
            self.minute = minute
        elif minute < self.minute:
            self.late += 1  # already reported minutes do not change; later rows include it
        if fact.flow_id:
            self._count(fact, minute)
        return rows

    def forget(self, recipient_hash: str) -> int:
        """Drop one recipient from every flow (erasure); how many flows held them.

        Later rows no longer count them as entered or converged; minute counters and
        latencies are anonymous sums and stay. One dict lookup per flow.

        >>> book = ConvergenceBook(windows={"1h": 3600})
        >>> _ = book.observe(FlowFact(0, "welcome", "r1", DELIVERY))
        >>> _ = book.observe(FlowFact(1_000, "welcome", "r2", DELIVERY))
        >>> book.forget("r1"), "r1" in book.flows["welcome"].index
        (1, False)
        >>> [(r.entered, r.deliveries) for r in book.flush()]
        [(1, 2)]
        """
        dropped = 0
        for flow in self.flows.values():
            i = flow.index.pop(recipient_hash, None)
            if i is not None:
                flow.index[f"{_ERASED}{i}"] = i
                flow.last_delivery[i] = _NEVER
                flow.last_conversion[i] = _NEVER
                dropped += 1
        return dropped

    def flush(self) -> list[ConvergenceRow]:
        """End of input: the rows as of the end of the newest minute."""
        return self.rows_at((self.minute + 1) * MINUTE_MS) if self.minute >= 0 else []

    def _count(self, fact: FlowFact, minute: int) -> None:
        flow = self.flows.get(fact.flow_id)
        if flow is None:
            flow = self.flows[fact.flow_id] = _Flow(self.span_minutes)
        if minute > flow.minute_head:
            self._advance(flow, minute)
        elif minute <= flow.minute_head - self.span_minutes:
            return  # older than the longest window: nothing to count it in
        kind = fact.kind
        if kind < _COUNTERS:
            flow.minutes[minute % self.span_minutes, kind] += 1
        if fact.latency_s > 0:
            flow.lat_ts.append(fact.ts_ms)
            flow.lat_s.append(fact.latency_s)
        if kind == DELIVERY:
            i = flow.slot(fact.recipient_hash)
            if fact.ts_ms > flow.last_delivery[i]:
                flow.last_delivery[i] = fact.ts_ms
        elif kind == CONVERSION:
            i = flow.slot(fact.recipient_hash)
            if fact.ts_ms > flow.last_conversion[i]:
                flow.last_conversion[i] = fact.ts_ms

    def _advance(self, flow: _Flow, minute: int) -> None:
        span = self.span_minutes
        if flow.minute_head < 0 or minute - flow.minute_head >= span:
            flow.minutes[:] = 0
        else:
            for m in range(flow.minute_head + 1, minute + 1):
                flow.minutes[m % span] = 0
        flow.minute_head = minute
        # forget latencies older than the longest window
        horizon = (minute - span + 1) * MINUTE_MS
        if flow.lat_ts and flow.lat_ts[0] < horizon:
            keep = next((i for i, t in enumerate(flow.lat_ts) if t >= horizon), len(flow.lat_ts))
            del flow.lat_ts[:keep]
            del flow.lat_s[:keep]

    def rows_at(self, as_of_ms: int) -> list[ConvergenceRow]:
        rows = []
        end_minute = as_of_ms // MINUTE_MS  # exclusive
        for flow_id in sorted(self.flows):
            flow = self.flows[flow_id]
            n = len(flow.index)
            delivered_at = flow.last_delivery[:n]
            converted_at = flow.last_conversion[:n]
            lat_ts = np.frombuffer(flow.lat_ts, dtype=np.int64) if flow.lat_ts else None
            lat_s = np.frombuffer(flow.lat_s, dtype=np.float64) if flow.lat_s else None
            for name, seconds in self.windows.items():
                lo = as_of_ms - seconds * 1000
                in_window = (delivered_at >= lo) & (delivered_at < as_of_ms)
                entered = int(in_window.sum())
                converged = int((in_window & (converted_at >= lo) & (converted_at < as_of_ms))
                                .sum())
                counts = self._minute_sums(flow, end_minute - seconds // 60, end_minute)
                deliveries, human, machine, conversions, negatives = (int(c) for c in counts)
                if lat_ts is not None:
                    chosen = lat_s[(lat_ts >= lo) & (lat_ts < as_of_ms)]
                    chosen.sort()
                else:
                    chosen = np.empty(0)
                interactions = human + conversions
                rows.append(ConvergenceRow(
                    flow_id, name, as_of_ms, entered, converged,
                    round(converged / entered, 6) if entered else 0.0,
                    round(interactions / entered, 6) if entered else 0.0,
                    round((interactions + machine) / entered, 6) if entered else 0.0,
                    quantile_exact(chosen, 0.5), quantile_exact(chosen, 0.9),
                    round(negatives / deliveries, 6) if deliveries else 0.0,
                    deliveries, interactions, conversions, negatives, len(chosen)))
        return rows

    def _minute_sums(self, flow: _Flow, start: int, end: int) -> np.ndarray:
        """Counter sums over minutes [start, end) that the ring still holds."""
        start = max(start, flow.minute_head - self.span_minutes + 1)
        end = min(end, flow.minute_head + 1)
        if end <= start:
            return np.zeros(_COUNTERS, dtype=np.int64)
        span = self.span_minutes
        idx = np.arange(start, end) % span
        return flow.minutes[idx].sum(axis=0)
